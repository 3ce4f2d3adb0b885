/**
 * Retry policy, shared by both brokers: exponential backoff from a base delay, and the decision
 * of what a handler's outcome means for a message given the attempts made so far.
 */
import type {JobOutcome} from './outcome.js'

const MAX_DELAY_MS = 60 * 60 * 1000

/** The delay before retry n (1-based) for every retry a job can have: base, 2*base, 4*base... */
export function retryDelays(baseDelayMs: number, maxAttempts: number): number[] {
  const delays: number[] = []
  for (let n = 1; n < maxAttempts; n++) delays.push(Math.min(MAX_DELAY_MS, Math.max(1, baseDelayMs) * 2 ** (n - 1)))
  return delays.length > 0 ? delays : [Math.max(1, baseDelayMs)]
}

/** The delay after a given failed attempt (1-based), clamped to the last level. */
export function delayAfterAttempt(delays: readonly number[], attempt: number): number {
  return delays[Math.min(Math.max(attempt, 1), delays.length) - 1]!
}

export type Disposition = {action: 'ack'} | {action: 'retry'; reason: string} | {action: 'dead'; reason: string}

export function dispose(outcome: JobOutcome, attempt: number, maxAttempts: number): Disposition {
  switch (outcome.status) {
    case 'succeeded':
      return {action: 'ack'}
    case 'dead':
      return {action: 'dead', reason: outcome.reason}
    case 'retry':
      return attempt >= maxAttempts
        ? {action: 'dead', reason: `gave up after ${attempt} attempts: ${outcome.reason}`}
        : {action: 'retry', reason: outcome.reason}
  }
}
