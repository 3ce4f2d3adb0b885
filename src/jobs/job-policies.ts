/**
 * The queue's whole policy on one screen: for each kind of job, how many run at once per
 * worker, how many attempts it gets, how long one may take and whether new work runs it again;
 * and the delay ladder between attempts. Resolved once at start-up from config (pipeline.ts)
 * and handed to the runner, which alone decides with it; the brokers only carry out the delay
 * the runner names (RabbitMQ declares one delay queue per rung of the same ladder).
 */
import type {Config} from '../config/index.js'
import {JOB_KINDS, type JobKind} from './job-kinds.js'

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

/** Every kind's policy and the delay ladder: all the runner needs to decide a retry. */
export interface JobPolicies {
  kinds: Record<JobKind, JobPolicy>
  /** The delay before the retry that follows attempt n (1-based) is retryDelays[n - 1], the last rung past the end. */
  retryDelays: readonly number[]
}

const MINUTE = 60_000
const MAX_DELAY_MS = 60 * MINUTE

export const JOB_POLICIES: Record<JobKind, JobPolicy> = {
  transcode: {concurrency: 1, attempts: 5, timeoutMs: 120 * MINUTE, rerun: false},
  snapshot: {concurrency: 2, attempts: 5, timeoutMs: 10 * MINUTE, rerun: false},
  // Each artifact.created is another file to copy; renditions keep finishing after the first.
  fanout: {concurrency: 4, attempts: 8, timeoutMs: 30 * MINUTE, rerun: true},
  // Each event is another delivery. 15 attempts: retried with backoff for about a day at the
  // default JOB_RETRY_DELAY (5 s doubling: 5 s × (2^14 - 1) ≈ 23 h).
  webhook: {concurrency: 4, attempts: 15, timeoutMs: 5 * MINUTE, rerun: true},
}

/** The delay before retry n (1-based) for every retry a job can have: base, 2*base, 4*base..., at most an hour. */
export function retryDelays(baseDelayMs: number, maxAttempts: number): number[] {
  const delays: number[] = []
  for (let n = 1; n < maxAttempts; n++) delays.push(Math.min(MAX_DELAY_MS, Math.max(1, baseDelayMs) * 2 ** (n - 1)))
  return delays.length > 0 ? delays : [Math.max(1, baseDelayMs)]
}

/** Each kind's policy with the config's overrides applied, and the ladder for the longest budget. */
export function resolvePolicies(config: Pick<Config, 'jobPrefetch' | 'jobMaxAttempts' | 'jobRetryDelay'>): JobPolicies {
  const entries = JOB_KINDS.map((kind) => {
    const base = JOB_POLICIES[kind]
    return [kind, {...base, concurrency: config.jobPrefetch[kind] ?? base.concurrency, attempts: config.jobMaxAttempts ?? base.attempts}] as const
  })
  const kinds = Object.fromEntries(entries) as Record<JobKind, JobPolicy>
  return {kinds, retryDelays: retryDelays(config.jobRetryDelay, Math.max(...JOB_KINDS.map((k) => kinds[k].attempts)))}
}
