import {EntitySchema} from 'typeorm'
import type {JobKind} from '../../jobs/job-kinds.js'
import type {JobStatus} from '../../jobs/job-status.js'
import {bigintAsNumber} from '../columns.js'

/** One row per (upload, kind) of background work: where it stands and who is on it. */
export interface JobRecord {
  id: number
  uploadId: string
  kind: JobKind
  status: JobStatus
  attempts: number
  /** Why the last attempt failed, in words a person understands; null unless the job failed. */
  lastError: string | null
  /** What the last finished attempt did ("poster, 5 thumbnails, storyboard"), or why it had nothing to do. */
  summary: string | null
  progress: number
  workerNode: string | null
  createdAt: Date
  updatedAt: Date
  startedAt: Date | null
  finishedAt: Date | null
  /** New work arrived while an attempt ran (a rerun kind): the job runs once more after it succeeds. */
  rerunOwed: boolean
  /** The attempt number the current run started at: the attempt budget counts from it. */
  runFirstAttempt: number
}

export const JobEntity = new EntitySchema<JobRecord>({
  name: 'Job',
  tableName: 'jobs',
  columns: {
    id: {type: 'bigint', primary: true, generated: 'increment', transformer: bigintAsNumber},
    uploadId: {name: 'upload_id', type: 'text'},
    kind: {type: 'text'},
    status: {type: 'text'},
    attempts: {type: 'int'},
    lastError: {name: 'last_error', type: 'text', nullable: true},
    summary: {type: 'text', nullable: true},
    progress: {type: 'smallint'},
    workerNode: {name: 'worker_node', type: 'text', nullable: true},
    createdAt: {name: 'created_at', type: 'timestamptz'},
    updatedAt: {name: 'updated_at', type: 'timestamptz'},
    startedAt: {name: 'started_at', type: 'timestamptz', nullable: true},
    finishedAt: {name: 'finished_at', type: 'timestamptz', nullable: true},
    rerunOwed: {name: 'rerun_owed', type: 'boolean'},
    runFirstAttempt: {name: 'run_first_attempt', type: 'int'},
  },
})
