/**
 * What other modules plug in for each kind of job (consumers/ wires them): the handler that does
 * the work and, where a dead job leaves something to set right, its `onDead` hook. A kind
 * without a handler is not consumed here: its messages wait in the queue for a worker that has
 * one. Neither decides retries: the runner does, from the policies (job-policies.ts).
 */
import type {Logger} from 'pino'
import type {JobKind} from './job-kinds.js'
import type {JobMessageOf} from './messages.js'
import type {JobOutcome} from './outcome.js'

export interface JobContext {
  /** 1 for the first attempt of this run (a rerun starts again at 1), for logs: the runner decides retries. */
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
 * Outcome.skipped(why); otherwise do the work idempotently (a redelivery must not duplicate
 * artifacts) and return an outcome. Throwing UnrecoverableError means dead at once; any other
 * error means retry. Whether a retry is left is the runner's to say, never the handler's.
 */
export type JobHandler<K extends JobKind> = (job: JobMessageOf<K>, context: JobContext) => Promise<JobOutcome>

export type JobHandlers = {[K in JobKind]: JobHandler<K>}

/** Why a job is dead: the runner's reason, and what the last attempt threw, if it threw. */
export interface JobDeath {
  reason: string
  error?: unknown
}

/**
 * Called by the runner once it has decided a job is dead (dead outcome, UnrecoverableError, or
 * the attempts ran out), before the job is recorded dead; so it must be idempotent (a crash in
 * between runs it again). A hook that fails is logged; the job is dead all the same.
 */
export type DeadJobHook<K extends JobKind> = (job: JobMessageOf<K>, death: JobDeath, context: {log: Logger}) => Promise<void>

export type DeadJobHooks = {[K in JobKind]: DeadJobHook<K>}

export class JobRegistry {
  private readonly handlers: Partial<JobHandlers> = {}
  private readonly deadHooks: Partial<DeadJobHooks> = {}

  constructor(handlers: Partial<JobHandlers> = {}, onDead: Partial<DeadJobHooks> = {}) {
    for (const [kind, handler] of Object.entries(handlers) as Array<[JobKind, JobHandler<JobKind>]>) this.register(kind, handler, onDead[kind] as DeadJobHook<JobKind> | undefined)
  }

  register<K extends JobKind>(kind: K, handler: JobHandler<K>, onDead?: DeadJobHook<K>): this {
    if (this.handlers[kind]) throw new Error(`a ${kind} handler is already registered`)
    ;(this.handlers as Record<K, JobHandler<K>>)[kind] = handler
    if (onDead) (this.deadHooks as Record<K, DeadJobHook<K>>)[kind] = onDead
    return this
  }

  onDead<K extends JobKind>(kind: K): DeadJobHook<K> | undefined {
    return this.deadHooks[kind] as DeadJobHook<K> | undefined
  }

  handler<K extends JobKind>(kind: K): JobHandler<K> | undefined {
    return this.handlers[kind] as JobHandler<K> | undefined
  }

  /** Kinds this process can run. */
  kinds(): JobKind[] {
    return Object.keys(this.handlers) as JobKind[]
  }
}
