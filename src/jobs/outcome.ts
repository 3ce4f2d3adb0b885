/**
 * What a handler says happened. Each outcome maps to exactly one broker action:
 * succeeded and skipped (nothing to do) -> ack, retry -> retry with backoff (or dead once
 * attempts run out), dead -> dead-letter. A summary says what was done; a reason, what failed.
 */
export type JobOutcome =
  | {status: 'succeeded'; summary?: string}
  | {status: 'skipped'; summary: string}
  | {status: 'retry'; reason: string}
  | {status: 'dead'; reason: string}

export const Outcome = {
  succeeded: (summary?: string): JobOutcome => (summary === undefined ? {status: 'succeeded'} : {status: 'succeeded', summary}),
  /** The handler had nothing to do (the upload vanished, no peer to copy to): done, and said so. */
  skipped: (summary: string): JobOutcome => ({status: 'skipped', summary}),
  retry: (reason: string): JobOutcome => ({status: 'retry', reason}),
  dead: (reason: string): JobOutcome => ({status: 'dead', reason}),
}

/**
 * Thrown for failures no retry can fix (bad input, a file that cannot be decoded): the job is
 * dead-lettered at once. Any other error thrown by a handler is treated as transient.
 */
export class UnrecoverableError extends Error {
  override name = 'UnrecoverableError'
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

/** Turns what a handler threw into an outcome, with the error's message as the reason. */
export function outcomeOfError(error: unknown): JobOutcome {
  const message = error instanceof Error ? error.message : String(error)
  return error instanceof UnrecoverableError ? Outcome.dead(message) : Outcome.retry(message)
}
