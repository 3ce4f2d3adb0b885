/**
 * The job state machine: one enum, its allowed transitions, and what a message for a job in each
 * state does. `failed` means "this attempt failed, another is scheduled"; `succeeded` and `dead`
 * are final unless the kind reruns on new work (JOB_POLICIES `rerun`).
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
  // running -> queued: the worker handed the job back on shutdown, or a rerun is owed.
  running: ['running', 'succeeded', 'failed', 'dead', 'queued'],
  failed: ['running', 'dead'],
  succeeded: [],
  dead: [],
}

/** `rerun`: the kind's policy runs a finished job again when new work arrives for it. */
export function canTransition(from: JobStatus, to: JobStatus, policy: {rerun: boolean} = {rerun: false}): boolean {
  if (policy.rerun && isFinished(from) && to === JobStatus.Running) return true
  return transitions[from].includes(to)
}

/** Succeeded or dead: only a kind that reruns on new work ever starts again. */
export function isFinished(status: JobStatus): boolean {
  return transitions[status].length === 0
}

/** Statuses whose work is still owed (the in-process broker rebuilds its queues from these). */
export const PENDING_STATUSES: readonly JobStatus[] = JOB_STATUSES.filter((s) => !isFinished(s))

/**
 * What a job message does, given the job's status (JobRepository.begin decides under the row
 * lock, so two messages for one job never both start it):
 * - `start`: queued or failed; a new attempt.
 * - `take-over`: running, and this is a redelivery (its consumer died or handed it back): the
 *   worker of the open attempt is gone; that attempt is abandoned and a new one starts.
 * - `rerun`: finished, and the kind reruns: new work; a new attempt with a fresh attempt budget.
 * - `owe-rerun`: running, a first delivery, and the kind reruns: the attempt in progress may have
 *   looked before the new work existed, so the job runs once more after it succeeds.
 * - `duplicate`: nothing to do (finished, or running elsewhere); the message is acked.
 */
export type StartDecision = 'start' | 'take-over' | 'rerun' | 'owe-rerun' | 'duplicate'

export function decideStart(status: JobStatus, message: {redelivery: boolean}, policy: {rerun: boolean}): StartDecision {
  switch (status) {
    case JobStatus.Queued:
    case JobStatus.Failed:
      return 'start'
    case JobStatus.Running:
      if (message.redelivery) return 'take-over'
      return policy.rerun ? 'owe-rerun' : 'duplicate'
    case JobStatus.Succeeded:
    case JobStatus.Dead:
      return policy.rerun ? 'rerun' : 'duplicate'
  }
}

/**
 * A job's status as clients see it (status API, upload feed). Stored `failed` means "this attempt
 * failed, another is scheduled": a client reading `failed` would report a failure that fixes
 * itself, so it is shown as `retrying`; `dead` is the only final failure.
 */
export type ClientJobStatus = Exclude<JobStatus, typeof JobStatus.Failed> | 'retrying'

export function clientJobStatus(status: JobStatus): ClientJobStatus {
  return status === JobStatus.Failed ? 'retrying' : status
}
