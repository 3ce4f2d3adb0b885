/**
 * snapshot jobs: poster, thumbnails, storyboard sprite + WebVTT (src/media does the work; this
 * file says what its result means for the job).
 */
import {Outcome} from '../src/jobs/outcome.js'
import type {JobHandler} from '../src/jobs/registry.js'
import {NoFrameWritten, openMediaJobs, SnapshotsIncomplete, UnplayableMedia, type MediaJobs} from '../src/media/index.js'
import type {ConsumerDeps} from './consumer-deps.js'
import {mediaOutcome} from './media-outcome.js'
import {uploadSource} from './upload-source.js'

export function snapshotHandler(deps: ConsumerDeps): JobHandler<'snapshot'> {
  return snapshotWork(openMediaJobs({...deps, acquireSource: uploadSource(deps)}))
}

/**
 * Done -> succeeded; an unplayable input -> dead at once (the upload is already failed with
 * its reason), as are snapshots the video has no frame for (what was made is recorded; the
 * upload is untouched); any other error -> retry.
 */
export function snapshotWork(media: Pick<MediaJobs, 'snapshot'>): JobHandler<'snapshot'> {
  return async (job, context) => {
    try {
      return mediaOutcome(await media.snapshot(job.uploadId, context), context.log)
    } catch (error) {
      if (error instanceof UnplayableMedia) return Outcome.dead(error.reason)
      if (error instanceof NoFrameWritten) return Outcome.dead(error.message.split('\n')[0]!)
      if (error instanceof SnapshotsIncomplete) {
        // Deterministic: the same file gives the same frames. The upload stays as the transcode leaves it.
        context.log.warn({err: error, commands: error.missing.map((m) => m.commandLine)}, error.message)
        return Outcome.dead(error.message)
      }
      context.log.warn({err: error}, `snapshot attempt ${context.attempt} failed`)
      return Outcome.retry(error instanceof Error ? error.message : String(error))
    }
  }
}
