/**
 * The queue's whole policy on one screen: for each kind of job, how many run at once per
 * worker, how many attempts it gets, how long one may take and whether new work runs it again;
 * and the handler other modules plug in for it (consumers/ wires them). A kind without a handler
 * is not consumed here: its messages wait in the queue for a worker that has one.
 */
import type {Logger} from 'pino'
import type {JobKind} from './job-kinds.js'
import type {JobMessageOf} from './messages.js'
import type {JobOutcome} from './outcome.js'

export interface JobPolicy {
  /** Prefetch: deliveries one worker holds at once (config jobPrefetch overrides). */
  concurrency: number
  /** Attempts before the job is dead (config jobMaxAttempts overrides). */
  attempts: number
  /** Longest one attempt may run; past it the attempt is aborted and counts as failed. */
  timeoutMs: number
  /**
   * New triggering events mean new work: a message for a job that already finished runs it again
   * (fresh attempt budget), and messages that arrive while it runs make it run once more after.
   * Without it, a finished job's messages are duplicates and are acked.
   */
  rerun: boolean
}

const MINUTE = 60_000

export const JOB_POLICIES: Record<JobKind, JobPolicy> = {
  transcode: {concurrency: 1, attempts: 5, timeoutMs: 120 * MINUTE, rerun: false},
  snapshot: {concurrency: 2, attempts: 5, timeoutMs: 10 * MINUTE, rerun: false},
  // Each artifact.created is another file to copy; renditions keep finishing after the first.
  fanout: {concurrency: 4, attempts: 8, timeoutMs: 30 * MINUTE, rerun: true},
  // Each event is another delivery. 15 attempts: retried with backoff for about a day at the
  // default JOB_RETRY_DELAY (5 s doubling: 5 s × (2^14 - 1) ≈ 23 h).
  webhook: {concurrency: 4, attempts: 15, timeoutMs: 5 * MINUTE, rerun: true},
}

export interface JobContext {
  /** 1 for the first attempt of this run (a rerun starts again at 1, with a fresh budget). */
  attempt: number
  nodeId: string
  /** Aborted when the attempt times out or the worker must stop; long work should watch it. */
  signal: AbortSignal
  log: Logger
  /** Records progress (0-100) on the job row, for the status API. */
  progress(percent: number): Promise<void>
}

/**
 * The handler contract: reload the entity by id; if it has vanished, log and return
 * Outcome.succeeded(note); otherwise do the work idempotently (a redelivery must not duplicate
 * artifacts) and return an outcome. Throwing UnrecoverableError means dead at once; any other
 * error means retry.
 */
export type JobHandler<K extends JobKind> = (job: JobMessageOf<K>, context: JobContext) => Promise<JobOutcome>

export type JobHandlers = {[K in JobKind]: JobHandler<K>}

export class JobRegistry {
  private readonly handlers: Partial<JobHandlers> = {}

  constructor(handlers: Partial<JobHandlers> = {}) {
    for (const [kind, handler] of Object.entries(handlers) as Array<[JobKind, JobHandler<JobKind>]>) this.register(kind, handler)
  }

  register<K extends JobKind>(kind: K, handler: JobHandler<K>): this {
    if (this.handlers[kind]) throw new Error(`a ${kind} handler is already registered`)
    ;(this.handlers as Record<K, JobHandler<K>>)[kind] = handler
    return this
  }

  handler<K extends JobKind>(kind: K): JobHandler<K> | undefined {
    return this.handlers[kind] as JobHandler<K> | undefined
  }

  /** Kinds this process can run. */
  kinds(): JobKind[] {
    return Object.keys(this.handlers) as JobKind[]
  }
}
