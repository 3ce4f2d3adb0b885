/**
 * src/media: the only code that knows how ffmpeg is called. Probe, rendition planning,
 * transcoding, snapshots, artifacts on disk and in the database. Other modules use what this
 * file exports: plain media work and typed errors. It knows nothing of jobs: consumers/ adapts
 * the work to the job runner (test/import-graph.test.ts holds it to that).
 */
import {uploadFilePath} from '../uploads/upload-files.js'
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import type {Config} from '../config/index.js'
import {MediaJobs, type MediaJobDeps} from './media-jobs.js'
import {MediaRepository} from './media-repository.js'
import {earlyProbe, type HeadVerdict} from './early-probe.js'
import {checkMediaToolsOnce, locateMediaTools, type MediaTools} from './media-tools.js'

export {UnplayableMedia, FfmpegFailed, FfmpegTimedOut, MediaToolsMissing, NoFrameWritten, SnapshotsIncomplete} from './errors.js'
export {MediaJobs, type MediaJobContext, type MediaJobResult} from './media-jobs.js'
export {MediaRepository} from './media-repository.js'

/** Finds ffmpeg/ffprobe and checks their encoders and filters; once per process and pair of binaries. */
export async function readyMediaTools(config: Pick<Config, 'searchPath' | 'ffmpegPath' | 'ffprobePath'> & Partial<Pick<Config, 'mediaNice' | 'mediaProbeTimeout'>>): Promise<MediaTools> {
  const tools = locateMediaTools(config)
  await checkMediaToolsOnce(tools)
  return tools
}

/** The early probe's own limit: reading the head of a file is quick, a wait past this is "can't tell". */
const EARLY_PROBE_TIMEOUT_MS = 15_000

/**
 * The look at an upload's first MiB while the rest arrives (uploads/early-inspection.ts calls
 * it; node.ts hands it over), or undefined where this process has no ffprobe: then every
 * upload is judged once complete, by the worker that transcodes it.
 */
export function openEarlyProbe(config: Pick<Config, 'searchPath' | 'ffmpegPath' | 'ffprobePath' | 'mediaNice' | 'mediaProbeTimeout' | 'mediaMaxDuration'>, log: Logger): HeadVerdict | undefined {
  let tools: MediaTools
  try {
    tools = locateMediaTools(config)
  } catch (error) {
    log.warn({err: error}, 'no ffprobe on this node: uploads are not looked at while they arrive')
    return undefined
  }
  return earlyProbe(tools, {maxDurationMs: config.mediaMaxDuration, timeoutMs: Math.min(config.mediaProbeTimeout, EARLY_PROBE_TIMEOUT_MS)})
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
