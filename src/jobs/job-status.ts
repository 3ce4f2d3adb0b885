/**
 * The job state machine: one enum and its allowed transitions. `failed` means "this attempt
 * failed, another is scheduled"; `dead` is final (attempts exhausted or bad input).
 */
export const JobStatus = {
  Queued: 'queued',
  Running: 'running',
  Succeeded: 'succeeded',
  Failed: 'failed',
  Dead: 'dead',
} as const
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus]

export const JOB_STATUSES = Object.values(JobStatus)

const transitions: Record<JobStatus, readonly JobStatus[]> = {
  queued: ['running', 'dead'],
  // running -> running: a redelivery takes over an attempt whose worker died.
  // running -> queued: the worker handed the job back on shutdown.
  running: ['running', 'succeeded', 'failed', 'dead', 'queued'],
  failed: ['running', 'dead'],
  succeeded: [],
  dead: [],
}

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return transitions[from].includes(to)
}

/** Finished jobs are never run again: a redelivered or duplicated message for one is acked. */
export function isFinished(status: JobStatus): boolean {
  return transitions[status].length === 0
}

/** Statuses whose work is still owed (the in-process broker rebuilds its queues from these). */
export const PENDING_STATUSES: readonly JobStatus[] = JOB_STATUSES.filter((s) => !isFinished(s))
