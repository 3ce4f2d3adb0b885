/** What a media step's result means for its job, the same for transcode and snapshot. */
import type {Logger} from 'pino'
import {Outcome, type JobOutcome} from '../src/jobs/outcome.js'
import type {MediaJobResult} from '../src/media/index.js'

/** Done -> succeeded with what was made; nothing to do (the upload vanished, nothing to process) -> skipped, logged. */
export function mediaOutcome(result: MediaJobResult, log: Logger): JobOutcome {
  if (result.done) return Outcome.succeeded(result.note)
  log.info(result.note)
  return Outcome.skipped(result.note)
}
