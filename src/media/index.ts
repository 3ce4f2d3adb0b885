/**
 * src/media: the only code that knows how ffmpeg is called. Probe, rendition planning,
 * transcoding, snapshots, artifacts on disk and in the database. Other modules use what this
 * file exports.
 */
import {uploadFilePath} from '../uploads/upload-files.js'
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import type {Config} from '../config/index.js'
import {Outcome} from '../jobs/outcome.js'
import type {JobHandler} from '../jobs/registry.js'
import {FfmpegTimedOut, NoFrameWritten, SnapshotsIncomplete, UnplayableMedia} from './errors.js'
import {MediaJobs, type MediaJobDeps} from './media-jobs.js'
import {MediaRepository} from './media-repository.js'
import {checkMediaToolsOnce, locateMediaTools, type MediaTools} from './media-tools.js'

export {UnplayableMedia, FfmpegFailed, FfmpegTimedOut, MediaToolsMissing, NoFrameWritten, SnapshotsIncomplete} from './errors.js'
export {MediaJobs, type MediaJobContext, type MediaJobResult} from './media-jobs.js'
export {MediaRepository} from './media-repository.js'

/** Finds ffmpeg/ffprobe and checks their encoders and filters; once per process and pair of binaries. */
export async function readyMediaTools(config: Pick<Config, 'searchPath' | 'ffmpegPath' | 'ffprobePath'> & Partial<Pick<Config, 'mediaNice'>>): Promise<MediaTools> {
  const tools = locateMediaTools(config)
  await checkMediaToolsOnce(tools)
  return tools
}

/**
 * The media jobs of this process. The tool check starts now (start-up) and its failure is
 * logged at once, naming what is missing; jobs wait for it and fail (to be retried) while it does.
 */
export function openMediaJobs(deps: {config: Config; db: DataSource; log: Logger; acquireSource?: MediaJobDeps['acquireSource']}): MediaJobs {
  const tools = readyMediaTools(deps.config)
  tools.then(
    (found) => deps.log.debug({ffmpeg: found.ffmpegPath, ffprobe: found.ffprobePath}, 'media tools ready'),
    (error: Error) => deps.log.error(error.message)
  )
  return new MediaJobs({
    tools,
    repository: new MediaRepository(deps.db),
    config: deps.config,
    acquireSource: deps.acquireSource ?? (async (upload) => ({path: uploadFilePath(deps.config.dataDir, upload.id), release: async () => {}})),
  })
}

/**
 * Adapts a media job to the runner's handler contract: done -> succeeded; an unplayable input
 * -> dead at once (the upload is already failed with its reason), as are snapshots the video has
 * no frame for (what was made is recorded; the upload is untouched); any other error -> retry,
 * and on the last attempt the upload is marked failed so it does not stay "processing".
 */
export function mediaJobHandler<K extends 'transcode' | 'snapshot'>(jobs: MediaJobs, kind: K, maxAttempts: number): JobHandler<K> {
  return async (job, context) => {
    const {uploadId} = job as {uploadId: string}
    try {
      const result = await jobs[kind](uploadId, context)
      if (!result.done) context.log.info(result.note)
      return Outcome.succeeded(result.note)
    } catch (error) {
      if (error instanceof UnplayableMedia) return Outcome.dead(error.reason)
      if (error instanceof NoFrameWritten) return Outcome.dead(error.message.split('\n')[0]!)
      if (error instanceof SnapshotsIncomplete) {
        // Deterministic: the same file gives the same frames. The upload stays as the transcode leaves it.
        context.log.warn({err: error, commands: error.missing.map((m) => m.commandLine)}, error.message)
        return Outcome.dead(error.message)
      }
      context.log.warn({err: error}, `${kind} attempt ${context.attempt} of ${maxAttempts} failed`)
      const reason = error instanceof FfmpegTimedOut ? `${kind} took longer than its time limit` : `${kind} failed`
      if (kind === 'transcode' && context.attempt >= maxAttempts) {
        await jobs.giveUp(uploadId, `${reason}; the video could not be processed`)
        return Outcome.dead(reason)
      }
      return Outcome.retry(error instanceof Error ? error.message : String(error))
    }
  }
}
