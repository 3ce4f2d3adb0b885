import {EntitySchema} from 'typeorm'
import {bigintAsNumber} from '../columns.js'

/** How one attempt at a job ended; `skipped` when it had nothing to do, `abandoned` when its worker died and another took over. */
export type AttemptOutcome = 'succeeded' | 'skipped' | 'failed' | 'dead' | 'abandoned' | 'handed_back'

export interface JobAttemptRecord {
  id: number
  jobId: number
  attempt: number
  workerNode: string
  startedAt: Date
  finishedAt: Date | null
  outcome: AttemptOutcome | null
  /** Why it failed; null unless it did. */
  error: string | null
  /** What a finished attempt did (or why it had nothing to do). */
  summary: string | null
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
    summary: {type: 'text', nullable: true},
  },
})
