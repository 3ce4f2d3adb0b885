/**
 * transcode jobs: probe, then MP4 + HLS ladder; the upload is ready at its first rendition
 * (src/media does the work; this file says what its result means for the job).
 */
import {resolvePolicies} from '../src/jobs/pipeline.js'
import {Outcome} from '../src/jobs/outcome.js'
import type {JobHandler} from '../src/jobs/registry.js'
import {FfmpegTimedOut, openMediaJobs, UnplayableMedia, type MediaJobs} from '../src/media/index.js'
import type {ConsumerDeps} from './consumer-deps.js'
import {uploadSource} from './upload-source.js'

export function transcodeHandler(deps: ConsumerDeps): JobHandler<'transcode'> {
  return transcodeWork(openMediaJobs({...deps, acquireSource: uploadSource(deps)}), resolvePolicies(deps.config).transcode.attempts)
}

/**
 * Done -> succeeded; an unplayable input -> dead at once (the upload is already failed with
 * its reason); any other error -> retry, and on the last attempt the upload is marked failed
 * so it does not stay "processing".
 */
export function transcodeWork(media: Pick<MediaJobs, 'transcode' | 'giveUp'>, maxAttempts: number): JobHandler<'transcode'> {
  return async (job, context) => {
    try {
      const result = await media.transcode(job.uploadId, context)
      if (!result.done) context.log.info(result.note)
      return Outcome.succeeded(result.note)
    } catch (error) {
      if (error instanceof UnplayableMedia) return Outcome.dead(error.reason)
      context.log.warn({err: error}, `transcode attempt ${context.attempt} of ${maxAttempts} failed`)
      if (context.attempt >= maxAttempts) {
        const reason = error instanceof FfmpegTimedOut ? 'transcode took longer than its time limit' : 'transcode failed'
        await media.giveUp(job.uploadId, `${reason}; the video could not be processed`)
        return Outcome.dead(reason)
      }
      return Outcome.retry(error instanceof Error ? error.message : String(error))
    }
  }
}
