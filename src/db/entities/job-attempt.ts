import {EntitySchema} from 'typeorm'
import {bigintAsNumber} from '../columns.js'

/** How one attempt at a job ended; `abandoned` when its worker died and another took over. */
export type AttemptOutcome = 'succeeded' | 'failed' | 'dead' | 'abandoned' | 'handed_back'

export interface JobAttemptRecord {
  id: number
  jobId: number
  attempt: number
  workerNode: string
  startedAt: Date
  finishedAt: Date | null
  outcome: AttemptOutcome | null
  error: string | null
}

export const JobAttemptEntity = new EntitySchema<JobAttemptRecord>({
  name: 'JobAttempt',
  tableName: 'job_attempts',
  columns: {
    id: {type: 'bigint', primary: true, generated: 'increment', transformer: bigintAsNumber},
    jobId: {name: 'job_id', type: 'bigint', transformer: bigintAsNumber},
    attempt: {type: 'int'},
    workerNode: {name: 'worker_node', type: 'text'},
    startedAt: {name: 'started_at', type: 'timestamptz'},
    finishedAt: {name: 'finished_at', type: 'timestamptz', nullable: true},
    outcome: {type: 'text', nullable: true},
    error: {type: 'text', nullable: true},
  },
})
