/**
 * The consumer runner: takes deliveries of each kind it has a handler for, validates them,
 * records the attempt (or, for a duplicate, only what it owes), runs the handler under its
 * timeout, decides what the outcome means (`settlementOf`: ack, retry after which delay, or
 * dead, from the policies resolved once at start-up), runs the kind's `onDead` hook for a dead
 * job, commits, and only then settles the message. Retries, the attempt budget, the delays,
 * dead-lettering and reruns are decided here and nowhere else: handlers return an outcome,
 * brokers carry out the delay they are given. close() stops taking, waits for work in flight
 * (up to a deadline), then aborts and hands back the rest.
 */
import type {Logger} from 'pino'
import type {Broker, Delivery, Subscription} from './broker.js'
import type {JobRecord} from '../db/entities/job.js'
import type {JobKind} from './job-kinds.js'
import type {JobPolicies, JobPolicy} from './job-policies.js'
import type {FinishResult, JobRepository} from './job-repository.js'
import {JobStatus} from './job-status.js'
import {jobMessage, parseJobMessage, type JobMessage} from './messages.js'
import {outcomeOfError, type JobOutcome} from './outcome.js'
import type {JobRegistry} from './registry.js'

export interface JobRunnerOptions {
  broker: Broker
  jobs: JobRepository
  registry: JobRegistry
  /** Resolved once at start-up (resolvePolicies); the brokers' delay queues follow the same ladder. */
  policies: JobPolicies
  nodeId: string
  log: Logger
}

interface InFlight {
  done: Promise<void>
  abort: AbortController
}

class Stopping extends Error {
  override name = 'Stopping'
}

/** The attempt's number within its run (1 first): what the attempt budget counts. */
export function attemptInRun(job: Pick<JobRecord, 'attempts' | 'runFirstAttempt'>): number {
  return job.attempts - job.runFirstAttempt + 1
}

/** What an outcome does to its message. */
export type Settlement = {action: 'ack'} | {action: 'retry'; reason: string; delayMs: number} | {action: 'dead'; reason: string}

/**
 * The one retry decision: a retry outcome is retried after the ladder's delay for this attempt
 * while the kind's budget lasts, and is dead once it has run out.
 */
export function settlementOf(outcome: JobOutcome, attempt: number, policy: Pick<JobPolicy, 'attempts'>, retryDelays: readonly number[]): Settlement {
  switch (outcome.status) {
    case 'succeeded':
    case 'skipped':
      return {action: 'ack'}
    case 'dead':
      return {action: 'dead', reason: outcome.reason}
    case 'retry':
      if (attempt >= policy.attempts) return {action: 'dead', reason: `gave up after ${attempt} attempts: ${outcome.reason}`}
      return {action: 'retry', reason: outcome.reason, delayMs: retryDelays[Math.min(Math.max(attempt, 1), retryDelays.length) - 1]!}
  }
}

/** A handler's outcome, with what it threw when it threw (for the onDead hook). */
interface Attempted {
  outcome: JobOutcome
  error?: unknown
}

/** One settled attempt, for observers (metrics): what ran, how it ended, how long it took. */
export interface SettledJob {
  kind: JobKind
  jobId: number
  uploadId: string
  status: typeof JobStatus.Succeeded | typeof JobStatus.Failed | typeof JobStatus.Dead
  seconds: number
}

export class JobRunner {
  private readonly subscriptions: Subscription[] = []
  private readonly inFlight = new Set<InFlight>()
  private readonly settledListeners: Array<(settled: SettledJob) => void> = []
  private stopping = false
  private closing?: Promise<void>

  constructor(private readonly options: JobRunnerOptions) {}

  /** Starts consuming every given kind that has a handler; returns the kinds actually consumed. */
  async start(kinds: readonly JobKind[]): Promise<JobKind[]> {
    const {broker, registry, policies, log} = this.options
    const consumed = kinds.filter((kind) => registry.handler(kind))
    for (const kind of consumed) {
      this.subscriptions.push(await broker.consume(kind, policies.kinds[kind].concurrency, (delivery) => this.track(kind, delivery)))
    }
    const idle = kinds.filter((kind) => !consumed.includes(kind))
    if (idle.length > 0) log.info({kinds: idle}, 'no handler registered for these kinds here; their jobs wait for a worker that has one')
    return consumed
  }

  /** Called after each attempt whose outcome this runner committed. */
  onSettled(listener: (settled: SettledJob) => void): void {
    this.settledListeners.push(listener)
  }

  get activeJobs(): number {
    return this.inFlight.size
  }

  /** Idempotent: stop taking, let in-flight work finish until the deadline, hand back the rest. */
  close(deadlineMs: number): Promise<void> {
    return (this.closing ??= (async () => {
      this.stopping = true
      for (const subscription of this.subscriptions) await subscription.cancel().catch(() => {})
      const all = () => Promise.all([...this.inFlight].map((f) => f.done))
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), deadlineMs)))
      if ((await Promise.race([all().then(() => 'done' as const), deadline])) === 'timeout') {
        this.options.log.warn({jobs: this.inFlight.size}, 'jobs still running at the shutdown deadline; handing them back')
        for (const flight of this.inFlight) flight.abort.abort(new Stopping('the worker is shutting down'))
        await all()
      }
      clearTimeout(timer)
    })())
  }

  private track(kind: JobKind, delivery: Delivery): Promise<void> {
    const abort = new AbortController()
    const flight: InFlight = {abort, done: Promise.resolve()}
    flight.done = this.handle(kind, delivery, abort).finally(() => this.inFlight.delete(flight))
    this.inFlight.add(flight)
    return flight.done
  }

  private async handle(kind: JobKind, delivery: Delivery, abort: AbortController): Promise<void> {
    const {jobs, nodeId} = this.options
    const log = this.options.log.child({kind})
    if (this.stopping) return delivery.requeue()
    const parsed = parseJobMessage(delivery.body, kind)
    if (!parsed.ok) {
      log.warn({reason: parsed.reason}, 'malformed job message; dead-lettering it')
      return delivery.deadLetter(`malformed message: ${parsed.reason}`)
    }
    const message = parsed.message
    // Every line about this job carries its upload (and, once known, job) id.
    const uploadLog = log.child({uploadId: message.uploadId})
    let job: JobRecord
    try {
      const request = {redelivery: delivery.deliveryCount > 1, rerun: this.options.policies.kinds[kind].rerun}
      const started = await jobs.begin(message.uploadId, kind, nodeId, request)
      const fields = {jobId: started.job.id, status: started.job.status, deliveryCount: delivery.deliveryCount}
      if (!started.run) {
        if (started.decision === 'owe-rerun') uploadLog.info(fields, 'job is running; it will run once more after this attempt, for the new work')
        else uploadLog.info(fields, `job is ${started.job.status} already; acknowledging the duplicate`)
        return delivery.ack()
      }
      if (started.decision === 'take-over') uploadLog.warn(fields, 'message redelivered while its job was running: its worker is gone; taking the job over')
      if (started.decision === 'rerun') uploadLog.info(fields, 'new work for a finished job; running it again')
      job = started.job
    } catch (error) {
      uploadLog.error({err: error}, 'could not record the job start; retrying later')
      return delivery.retry(1, 'the jobs table could not be written')
    }
    const jobLog = uploadLog.child({jobId: job.id})
    const startedAt = performance.now()
    const attempted = await this.runHandler(kind, message, job, abort, jobLog)
    if (attempted === 'stopped') {
      await jobs.handBack(job).catch((error: unknown) => jobLog.error({err: error}, 'could not record the hand-back'))
      return delivery.requeue()
    }
    await this.settle(kind, delivery, message, job, attempted, jobLog, (performance.now() - startedAt) / 1000)
  }

  private async runHandler(kind: JobKind, message: JobMessage, job: JobRecord, abort: AbortController, log: Logger): Promise<Attempted | 'stopped'> {
    const policy = this.options.policies.kinds[kind]
    const handler = this.options.registry.handler(kind)!
    const timeout = setTimeout(() => abort.abort(new Error(`timed out after ${policy.timeoutMs} ms`)), policy.timeoutMs)
    const aborted = new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(abort.signal.reason), {once: true}))
    aborted.catch(() => {})
    const context = {
      attempt: attemptInRun(job),
      nodeId: this.options.nodeId,
      signal: abort.signal,
      log: log.child({attempt: job.attempts}),
      progress: (percent: number) => this.options.jobs.reportProgress(job, percent),
    }
    try {
      return {outcome: await Promise.race([(handler as (m: JobMessage, c: typeof context) => Promise<JobOutcome>)(message, context), aborted])}
    } catch (error) {
      if (error instanceof Stopping) return 'stopped'
      return {outcome: outcomeOfError(error), error}
    } finally {
      clearTimeout(timeout)
    }
  }

  /** Commit first, then settle the message: a crash in between redelivers, never loses. */
  private async settle(kind: JobKind, delivery: Delivery, message: JobMessage, job: JobRecord, attempted: Attempted, log: Logger, seconds: number): Promise<void> {
    const {outcome} = attempted
    const disposition = settlementOf(outcome, attemptInRun(job), this.options.policies.kinds[kind], this.options.policies.retryDelays)
    if (disposition.action === 'dead') await this.runDeadHook(kind, message, {reason: disposition.reason, error: attempted.error}, log)
    const status = disposition.action === 'ack' ? JobStatus.Succeeded : disposition.action === 'retry' ? JobStatus.Failed : JobStatus.Dead
    const ended = {
      error: disposition.action === 'ack' ? null : disposition.reason,
      summary: outcome.status === 'succeeded' || outcome.status === 'skipped' ? (outcome.summary ?? null) : null,
      skipped: outcome.status === 'skipped',
    }
    const publishRerun = () => this.options.broker.publishJob(jobMessage(kind, job.uploadId))
    let result: FinishResult
    try {
      result = await this.options.jobs.finish(job, status, ended, publishRerun)
    } catch (err) {
      log.error({err}, 'could not record the job outcome; handing the message back')
      return delivery.requeue()
    }
    if (result === 'not-owner') {
      log.warn({attempt: job.attempts}, 'another worker took this job over; dropping this attempt')
      return delivery.ack()
    }
    for (const listener of this.settledListeners) listener({kind, jobId: job.id, uploadId: job.uploadId, status, seconds})
    const fields = {attempt: job.attempts}
    switch (disposition.action) {
      case 'ack':
        if (result === 'rerun') {
          log.info(fields, 'job succeeded; new work arrived while it ran, so it is queued to run once more')
        } else if (result === 'rerun-unpublished') {
          // Its redelivery finds the job succeeded and owing a rerun, and runs it.
          log.warn(fields, 'job succeeded but the run it owes could not be queued; handing the message back')
          return delivery.requeue()
        } else {
          log.info(fields, 'job succeeded')
        }
        return delivery.ack()
      case 'retry':
        log.warn({...fields, reason: disposition.reason, delayMs: disposition.delayMs}, 'job attempt failed; retrying after a delay')
        return delivery.retry(disposition.delayMs, disposition.reason)
      case 'dead':
        log.error({...fields, reason: disposition.reason}, 'job is dead')
        return delivery.deadLetter(disposition.reason)
    }
  }

  /** Before the job is recorded dead, so a crash in between runs the hook again on the redelivery. */
  private async runDeadHook(kind: JobKind, message: JobMessage, death: {reason: string; error?: unknown}, log: Logger): Promise<void> {
    const hook = this.options.registry.onDead(kind) as ((m: JobMessage, d: typeof death, c: {log: Logger}) => Promise<void>) | undefined
    if (!hook) return
    try {
      await hook(message, death, {log})
    } catch (error) {
      log.error({err: error}, 'the dead job\'s hook failed; the job is dead all the same')
    }
  }
}
