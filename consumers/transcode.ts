/**
 * transcode jobs: probe, then MP4 + HLS ladder; the upload is ready at its first rendition
 * (src/media does the work; this file says what its result means for the job, and what a dead
 * transcode leaves on the upload).
 */
import {Outcome} from '../src/jobs/outcome.js'
import type {DeadJobHook, JobHandler} from '../src/jobs/registry.js'
import {FfmpegTimedOut, MediaRepository, openMediaJobs, UnplayableMedia, type MediaJobs} from '../src/media/index.js'
import type {ConsumerDeps} from './consumer-deps.js'
import {mediaOutcome} from './media-outcome.js'
import {uploadSource} from './upload-source.js'

export function transcodeHandler(deps: ConsumerDeps): JobHandler<'transcode'> {
  return transcodeWork(openMediaJobs({...deps, acquireSource: uploadSource(deps)}))
}

/**
 * Done -> succeeded; an unplayable input -> dead at once (the upload is already failed with
 * its reason); anything else is thrown on to the runner, which retries while attempts last.
 */
export function transcodeWork(media: Pick<MediaJobs, 'transcode'>): JobHandler<'transcode'> {
  return async (job, context) => {
    try {
      return mediaOutcome(await media.transcode(job.uploadId, context), context.log)
    } catch (error) {
      if (error instanceof UnplayableMedia) return Outcome.dead(error.reason)
      throw error
    }
  }
}

/**
 * A dead transcode marks the upload failed, so it does not stay "processing" (an upload already
 * failed with its own reason, or ready from a first rendition, keeps its state).
 */
export function transcodeOnDead(deps: Pick<ConsumerDeps, 'db'>): DeadJobHook<'transcode'> {
  const media = new MediaRepository(deps.db)
  return async (job, death) => {
    const reason = death.error instanceof FfmpegTimedOut ? 'transcode took longer than its time limit' : 'transcode failed'
    await media.markFailed(job.uploadId, `${reason}; the video could not be processed`)
  }
}
