/**
 * The media work the job pipeline runs, one method per kind of job: reload the upload, do the
 * work idempotently, record artifacts, move the upload along (processing -> ready as soon as
 * the first rendition is playable, or failed with a reason a person understands). It knows
 * nothing of brokers: consumers/ adapts it to the job runner.
 */
import path from 'node:path'
import ms from 'ms'
import type {Logger} from 'pino'
import type {Config} from '../config/index.js'
import {UploadStatus} from '../uploads/upload-status.js'
import {describeFile, removeAbandonedTemps, uploadMediaDir} from './artifact-files.js'
import {NoFrameWritten, SnapshotsIncomplete, UnplayableMedia} from './errors.js'
import type {MediaRepository} from './media-repository.js'
import type {MediaTools} from './media-tools.js'
import {probeMedia, type MediaProbe, type VideoStreamInfo} from './probe.js'
import {planRenditions} from './rendition-ladder.js'
import {takeSnapshots, takeStillPoster, type SnapshotsTaken} from './snapshots.js'
import {MASTER_PLAYLIST, MP4_NAME, transcodeMedia} from './transcode.js'

export interface MediaJobDeps {
  /** Located and checked at start-up (media/index.ts); a job waits for it, and fails while it is missing. */
  tools: Promise<MediaTools>
  repository: MediaRepository
  config: Pick<Config, 'dataDir' | 'nodeId' | 'renditions' | 'x264Preset' | 'ffmpegTimeout' | 'thumbnailCount'> & Partial<Pick<Config, 'mediaMaxDuration'>>
  /**
   * The upload's received bytes as a local file: the upload store's own file when this node
   * holds it, else a copy fetched from the node that does; `release` removes such a copy.
   */
  acquireSource: (upload: {id: string; nodeId: string}) => Promise<SourceFile>
}

export interface SourceFile {
  path: string
  release(): Promise<void>
}

type Loaded = {source: string; probe: MediaProbe; release(): Promise<void>}

export interface MediaJobContext {
  signal: AbortSignal
  log: Logger
  progress(percent: number): Promise<void>
}

/** What a media job did; an unplayable input is thrown (UnplayableMedia), anything else retried. */
export type MediaJobResult = {done: true; note?: string} | {done: false; note: string}

/** How often a running job's percent is written: often enough for a progress bar, not a write per percent. */
const PROGRESS_WRITE_INTERVAL_MS = 500

/**
 * The job's percent to the database: one write in flight at a time (so they land in order),
 * at most one per interval except 100, and a percent already written is never written again.
 */
export function progressWriter(context: Pick<MediaJobContext, 'progress' | 'log'>, intervalMs = PROGRESS_WRITE_INTERVAL_MS, now: () => number = () => performance.now()) {
  let latest = -1
  let written = -1
  let lastWriteAt = Number.NEGATIVE_INFINITY
  let inFlight: Promise<void> | undefined
  const due = () => latest > written && (latest === 100 || now() - lastWriteAt >= intervalMs)
  const drain = async () => {
    while (due()) {
      const value = latest
      lastWriteAt = now()
      try {
        await context.progress(value)
      } catch (error) {
        context.log.debug({err: error}, 'progress not recorded')
      }
      written = value
    }
  }
  return {
    report(percent: number) {
      latest = Math.max(latest, percent)
      if (!inFlight && due()) inFlight = drain().finally(() => (inFlight = undefined))
    },
    /** Waits for the write in flight, if any. */
    settled: () => inFlight ?? Promise.resolve(),
  }
}

const made = (taken: SnapshotsTaken) =>
  [...(taken.poster ? ['poster'] : []), `${taken.thumbnails.length} thumbnails`, ...(taken.storyboard.length > 0 ? ['storyboard'] : [])].join(', ')

/** MEDIA_MAX_DURATION for inputs whose header early-probe.ts could not read while they arrived (moov last). */
function refuseOverLong(probe: MediaProbe, maxDurationMs: number | undefined): void {
  if (maxDurationMs && probe.duration * 1000 > maxDurationMs) {
    throw new UnplayableMedia(`the file is ${ms(Math.round(probe.duration * 1000), {long: true})} long, more than the ${ms(maxDurationMs, {long: true})} this service accepts`)
  }
}

/** Statuses in which an upload's bytes are complete and worth processing. */
const PROCESSABLE: UploadStatus[] = [UploadStatus.Completed, UploadStatus.Processing, UploadStatus.Ready, UploadStatus.Failed]

export class MediaJobs {
  constructor(private readonly deps: MediaJobDeps) {}

  private async load(uploadId: string): Promise<Loaded | {skip: string}> {
    const upload = await this.deps.repository.findUpload(uploadId)
    if (!upload) return {skip: `upload ${uploadId} no longer exists`}
    if (!PROCESSABLE.includes(upload.status)) return {skip: `upload ${uploadId} is ${upload.status}, nothing to process`}
    const source = await this.deps.acquireSource(upload)
    try {
      const probe = await probeMedia(await this.deps.tools, source.path)
      refuseOverLong(probe, this.deps.config.mediaMaxDuration)
      await this.deps.repository.recordProbe(uploadId, probe)
      return {source: source.path, probe, release: source.release}
    } catch (error) {
      await source.release()
      if (error instanceof UnplayableMedia) await this.deps.repository.markFailed(uploadId, error.reason)
      throw error
    }
  }

  async transcode(uploadId: string, context: MediaJobContext): Promise<MediaJobResult> {
    const loaded = await this.load(uploadId)
    if ('skip' in loaded) return {done: false, note: loaded.skip}
    try {
      return await this.transcodeLoaded(uploadId, loaded, context)
    } finally {
      await loaded.release()
    }
  }

  private async transcodeLoaded(uploadId: string, loaded: Loaded, context: MediaJobContext): Promise<MediaJobResult> {
    const {repository, config} = this.deps
    const tools = await this.deps.tools
    const outDir = uploadMediaDir(config.dataDir, uploadId)
    // What an earlier attempt of this job left half-written when it was killed (its own names
    // only: a snapshot job may be writing beside it).
    await Promise.all([
      repository.markProcessing(uploadId),
      removeAbandonedTemps(outDir, (name) => name === MP4_NAME),
      removeAbandonedTemps(path.join(outDir, 'hls'), () => true),
    ])
    const plan = planRenditions(loaded.probe, config.renditions)
    const progress = progressWriter(context)
    let ready = false
    try {
      await transcodeMedia({
        tools,
        source: loaded.source,
        probe: loaded.probe,
        plan,
        outDir,
        preset: config.x264Preset,
        timeoutMs: config.ffmpegTimeout,
        signal: context.signal,
        onProgress: progress.report,
        onRendition: async ({name, files}) => {
          const described = await Promise.all(files.map((file) => describeFile(outDir, file)))
          const download = name === 'download'
          // The master playlist belongs to no one rendition: one row, updated as the ladder grows.
          const own = described.filter((f) => f.path !== MASTER_PLAYLIST)
          const master = described.filter((f) => f.path === MASTER_PLAYLIST)
          await repository.artifacts.save(uploadId, config.nodeId, [
            {kind: download ? 'mp4' : 'hls', rendition: download ? '' : name, files: own},
            {kind: 'hls', rendition: '', files: master},
          ])
          // Playable from the first HLS rendition on; later ones need not ask again.
          if (download || ready) return
          ready = true
          if (await repository.markReady(uploadId)) context.log.info({uploadId, rendition: name}, 'upload is playable')
        },
      })
    } finally {
      await progress.settled()
    }
    return {done: true, note: plan.still ? `sound over ${'generated' in plan.still ? 'a generated still' : 'its cover art'}` : `${plan.renditions.length} renditions`}
  }

  async snapshot(uploadId: string, context: MediaJobContext): Promise<MediaJobResult> {
    const loaded = await this.load(uploadId)
    if ('skip' in loaded) return {done: false, note: loaded.skip}
    try {
      return await this.snapshotLoaded(uploadId, loaded, context)
    } finally {
      await loaded.release()
    }
  }

  private async snapshotLoaded(uploadId: string, loaded: Loaded, context: MediaJobContext): Promise<MediaJobResult> {
    const {repository, config} = this.deps
    const tools = await this.deps.tools
    const outDir = uploadMediaDir(config.dataDir, uploadId)
    if (!loaded.probe.video) {
      // Sound: its cover art, else a plain still, is the poster (and, with cover art, the picture the renditions show).
      const file = await takeStillPoster({tools, source: loaded.source, cover: loaded.probe.cover, outDir, timeoutMs: config.ffmpegTimeout, signal: context.signal})
      await repository.artifacts.save(uploadId, config.nodeId, [{kind: 'poster', rendition: '', files: [await describeFile(outDir, file)]}])
      await context.progress(100)
      return {done: true, note: loaded.probe.cover ? 'audio: poster from its cover art' : 'audio: a generated poster'}
    }
    const taken = await takeSnapshots({
      tools,
      source: loaded.source,
      probe: loaded.probe as MediaProbe & {video: VideoStreamInfo},
      outDir,
      thumbnailCount: config.thumbnailCount,
      timeoutMs: config.ffmpegTimeout,
      signal: context.signal,
    })
    const describe = (files: string[]) => Promise.all(files.map((f) => describeFile(outDir, f)))
    const [poster, thumbnails, storyboard] = await Promise.all([describe(taken.poster ? [taken.poster] : []), describe(taken.thumbnails), describe(taken.storyboard)])
    // What was made is recorded even when a part failed: a retry makes it again, in place.
    await repository.artifacts.save(uploadId, config.nodeId, [
      {kind: 'poster', rendition: '', files: poster},
      {kind: 'thumbnail', rendition: '', files: thumbnails},
      {kind: 'storyboard', rendition: '', files: storyboard},
    ])
    // A failed run may go better next time; a picture that is not there will not appear.
    const transient = taken.failures.find((error) => !(error instanceof NoFrameWritten))
    if (transient) throw transient
    if (taken.failures.length > 0) throw new SnapshotsIncomplete(taken.failures as NoFrameWritten[], `${made(taken)} made`)
    await context.progress(100)
    return {done: true, note: made(taken)}
  }
}

