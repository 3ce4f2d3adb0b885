/**
 * Transcoding: the MP4 for download (H.264/AAC, +faststart) and the HLS ladder with its master
 * playlist. One ffmpeg run per rendition, lowest first, so the upload can be played as soon as
 * the first one is published (onRendition); the top HLS rendition is cut from the MP4 by
 * stream copy instead of a second encode of the largest picture.
 */
import {mkdir, readdir} from 'node:fs/promises'
import path from 'node:path'
import ffmpeg from 'fluent-ffmpeg'
import {writeAtomically, writeFileAtomically} from './artifact-files.js'
import {videoCodecOf} from './codecs.js'
import {runFfmpeg} from './ffmpeg-run.js'
import type {MediaTools} from './media-tools.js'
import {colorTags, holdLastFrame, pictureFilters} from './picture.js'
import type {MediaProbe} from './probe.js'
import {GENERATED_STILL, type Rendition, type TranscodePlan} from './rendition-ladder.js'

export const HLS_SEGMENT_SECONDS = 4
/** Keyframes on a fixed clock so every rendition cuts its segments at the same times. */
const KEYFRAME_SECONDS = 2

export interface TranscodeOptions {
  tools: MediaTools
  source: string
  probe: MediaProbe
  plan: TranscodePlan
  /** The upload's media directory; outputs go under it. */
  outDir: string
  preset: string
  timeoutMs: number
  signal?: AbortSignal
  /** Whole-job percent, 0..100, never going back. */
  onProgress?: (percent: number) => void
  /** Each ffmpeg command line, as it starts. */
  onCommand?: (commandLine: string) => void
  /**
   * A rendition's files are in place and listed in the master playlist (the upload is
   * playable), or, named 'download', the MP4 is in place. Called in order, while later
   * renditions encode; the job ends once every call has.
   */
  onRendition?: (done: PublishedRendition) => Promise<void>
}

export interface PublishedRendition {
  /** The rendition, or 'download' for the MP4 (M4A). */
  name: string
  /** Paths relative to outDir of everything this step published (playlist, segments, master; or the MP4). */
  files: string[]
}

export const MP4_NAME = 'video.mp4'
export const MASTER_PLAYLIST = 'hls/master.m3u8'

const kbps = (bitrate: string) => Number.parseInt(bitrate, 10)

/**
 * Frames a second of a still picture held over sound. The picture lasts a whole number of
 * frames, which the playlists and the MP4 declare: at 25 it ends within 0.04 s of the sound (at
 * 5 it ran up to 0.2 s past it); identical frames cost x264 little either way.
 */
const STILL_FPS = 25

/** Sound runs ahead of a held picture; ffmpeg 4's default queue overflows ("Too many packets buffered"). */
const WAIT_FOR_PICTURE = ['-max_muxing_queue_size', '4096']

/** The plain still of sound without cover art, as a second input (lavfi), at the size of the one rendition it gets. */
function generatedStillInput(r: Rendition): {source: string; options: string[]} {
  return {source: `color=c=${GENERATED_STILL.color}:size=${r.width}x${r.height}:rate=${STILL_FPS}`, options: ['-f', 'lavfi']}
}

/** Inputs after the source that a rendition's picture needs. */
function extraInputs(r: Rendition, plan: TranscodePlan): {source: string; options: string[]}[] {
  return plan.still && 'generated' in plan.still ? [generatedStillInput(r)] : []
}

/**
 * The picture of a rendition: the video stream, or one image (the cover art, a generated still)
 * repeated over the sound's length, so segments and the MP4 last as long as the sound.
 */
function pictureArgs(r: Rendition, plan: TranscodePlan, probe: MediaProbe): string[] {
  // Square pixels: players show the size we write (a 16:9 480p is 854x480 at 1:1, not 852x480 at 640:639).
  const scale = `scale=${r.width}:${r.height},setsar=1`
  const held = ['-r', String(STILL_FPS), '-t', String(probe.duration), '-disposition:v:0', 'default', ...WAIT_FOR_PICTURE]
  if (plan.still && 'generated' in plan.still) return ['-map', '1:v:0', '-vf', 'setsar=1', ...held]
  if (plan.still) {
    const repeat = [scale, 'loop=loop=-1:size=1', `setpts=N/${STILL_FPS}/TB`].join(',')
    // The copy would keep the attached_pic disposition, which MP4 allows only for JPEG/PNG covers.
    return ['-map', `0:${plan.still.streamIndex}`, '-vf', repeat, ...held]
  }
  const video = probe.video!
  const hold = holdLastFrame({...probe, video})
  const filters = [...pictureFilters(video, scale), ...hold]
  return ['-map', '0:v:0', '-vf', filters.join(','), ...colorTags(video), ...(hold.length > 0 ? WAIT_FOR_PICTURE : [])]
}

function videoArgs(r: Rendition, preset: string, plan: TranscodePlan, probe: MediaProbe): string[] {
  const rate = kbps(r.videoBitrate)
  return [
    ...pictureArgs(r, plan, probe), '-c:v', 'libx264', '-preset', preset, '-profile:v', 'high', '-pix_fmt', 'yuv420p',
    '-b:v', `${rate}k`, '-maxrate', `${Math.round(rate * 1.1)}k`, '-bufsize', `${rate * 2}k`,
    '-force_key_frames', `expr:gte(t,n_forced*${KEYFRAME_SECONDS})`, '-sc_threshold', '0',
  ]
}

const audioArgs = (bitrate: string) => ['-map', '0:a:0', '-c:a', 'aac', '-b:a', bitrate, '-ac', '2']

const hlsArgs = (segment: string) => [
  '-f', 'hls', '-hls_time', String(HLS_SEGMENT_SECONDS), '-hls_playlist_type', 'vod',
  '-hls_flags', 'independent_segments', '-hls_segment_type', 'mpegts', '-hls_segment_filename', segment,
]

/** The EXT-X-STREAM-INF attributes of one variant; `videoCodec` as read back from its output. */
function variantLine(r: Rendition, videoCodec: string | undefined, audioBitrate: string, withAudio: boolean): string {
  const bandwidth = (kbps(r.videoBitrate) * 1.1 + (withAudio ? kbps(audioBitrate) : 0)) * 1000
  const codecs = [...(videoCodec ? [videoCodec] : []), ...(withAudio ? ['mp4a.40.2'] : [])].join(',')
  return `#EXT-X-STREAM-INF:BANDWIDTH=${Math.round(bandwidth)},RESOLUTION=${r.width}x${r.height},CODECS="${codecs}"`
}

/** `published`: each rendition listed so far, with the CODECS entry of its video (`avc1.64001f`). */
export function masterPlaylist(plan: TranscodePlan, published: ReadonlyMap<string, string>): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-INDEPENDENT-SEGMENTS']
  for (const r of plan.renditions.filter((r) => published.has(r.name))) {
    lines.push(variantLine(r, published.get(r.name), r.audioBitrate, plan.withAudio), `${r.name}/index.m3u8`)
  }
  return `${lines.join('\n')}\n`
}

const runOptions = (o: TranscodeOptions, onProgress: (p: number) => void) => ({
  outputDuration: o.probe.duration,
  timeoutMs: o.timeoutMs,
  onProgress,
  ...(o.signal ? {signal: o.signal} : {}),
  ...(o.onCommand ? {onCommand: o.onCommand} : {}),
})

/** Encodes (or, with `copyFrom`, cuts) one HLS rendition into hls/<name>/, published as a whole directory. */
async function hlsRendition(o: TranscodeOptions, name: string, args: string[], input: string, onProgress: (p: number) => void, inputs: ExtraInput[] = []): Promise<string[]> {
  const final = path.join(o.outDir, 'hls', name)
  await writeAtomically(final, async (temp) => {
    await mkdir(temp, {recursive: true})
    const command = withInputs(ffmpeg({source: input, cwd: temp, stdoutLines: 20}), inputs)
      .outputOptions([...args, ...hlsArgs('seg_%04d.ts')])
      .output('index.m3u8')
    await runFfmpeg(o.tools, command, runOptions(o, onProgress))
  })
  return (await readdir(final)).sort().map((file) => `hls/${name}/${file}`)
}

type ExtraInput = ReturnType<typeof extraInputs>[number]

function withInputs(command: ffmpeg.FfmpegCommand, inputs: ExtraInput[]): ffmpeg.FfmpegCommand {
  for (const input of inputs) command.input(input.source).inputOptions(input.options)
  return command
}

async function mp4(o: TranscodeOptions, name: string, args: string[], onProgress: (p: number) => void, inputs: ExtraInput[]): Promise<void> {
  await writeAtomically(path.join(o.outDir, name), async (temp) => {
    const command = withInputs(ffmpeg({source: o.source, stdoutLines: 20}), inputs)
      .outputOptions([...args, '-movflags', '+faststart', '-f', 'mp4'])
      .output(temp)
    await runFfmpeg(o.tools, command, runOptions(o, onProgress))
  })
}

/** Splits the job's progress over its runs by how many pixels each encodes. */
function progressTracker(weights: number[], report?: (percent: number) => void) {
  const total = weights.reduce((a, b) => a + b, 0)
  let doneWeight = 0
  let best = -1
  const emit = (percent: number) => {
    const clamped = Math.min(100, Math.max(0, Math.floor(percent)))
    if (clamped > best) {
      best = clamped
      report?.(clamped)
    }
  }
  return {
    step(index: number) {
      const weight = weights[index]!
      return {
        progress: (percent: number) => emit(((doneWeight + (weight * percent) / 100) / total) * 100),
        done: () => {
          doneWeight += weight
          emit((doneWeight / total) * 100)
        },
      }
    },
  }
}

/**
 * Publishes steps in order (master playlist, then onRendition) while the next encode runs: the
 * caller's work on a rendition (hashing, database rows) stays off the encodes' path. A failed
 * publication stops the job before its next encode.
 */
function publisher(o: TranscodeOptions) {
  const published = new Map<string, string>()
  let queue: Promise<void> = Promise.resolve()
  let failed: {error: unknown} | undefined
  const enqueue = (publish: () => Promise<void>) => {
    queue = queue.then(publish)
    queue.catch((error: unknown) => (failed ??= {error}))
  }
  return {
    rendition(name: string, files: string[]) {
      enqueue(async () => {
        const segment = files.find((f) => f.endsWith('.ts'))
        published.set(name, segment ? await videoCodecOf(path.join(o.outDir, segment)) : '')
        await writeFileAtomically(path.join(o.outDir, MASTER_PLAYLIST), masterPlaylist(o.plan, published))
        await o.onRendition?.({name, files: [...files, MASTER_PLAYLIST]})
      })
    },
    download(file: string) {
      enqueue(async () => o.onRendition?.({name: 'download', files: [file]}))
    },
    throwIfFailed() {
      if (failed) throw failed.error
    },
    /** Every publication done; rejects with the first failure. */
    settled: () => queue,
  }
}

export async function transcodeMedia(o: TranscodeOptions): Promise<void> {
  await mkdir(path.join(o.outDir, 'hls'), {recursive: true})
  const publish = publisher(o)
  try {
    await encodeAll(o, publish)
  } catch (error) {
    // Let a publication in flight finish (or fail) before the job reports its failure.
    await publish.settled().catch(() => {})
    throw error
  }
  await publish.settled()
}

async function encodeAll(o: TranscodeOptions, publish: ReturnType<typeof publisher>): Promise<void> {
  const {renditions, withAudio} = o.plan
  const top = renditions[0]!
  // Lowest first (fastest to playable); the top one is the MP4, then a copy of it into HLS.
  const order = [...renditions].reverse()
  const weights = order.map((r) => r.width * r.height * (r === top ? 1.05 : 1))
  const tracker = progressTracker(weights, o.onProgress)
  for (const [index, r] of order.entries()) {
    publish.throwIfFailed()
    const step = tracker.step(index)
    const audio = withAudio ? audioArgs(r.audioBitrate) : ['-an']
    let files: string[]
    if (r === top) {
      await mp4(o, MP4_NAME, [...videoArgs(r, o.preset, o.plan, o.probe), ...audio], (p) => step.progress(p * 0.95), extraInputs(r, o.plan))
      publish.download(MP4_NAME)
      files = await hlsRendition(o, r.name, ['-map', '0', '-c', 'copy'], path.join(o.outDir, MP4_NAME), (p) => step.progress(95 + p * 0.05))
    } else {
      files = await hlsRendition(o, r.name, [...videoArgs(r, o.preset, o.plan, o.probe), ...audio], o.source, step.progress, extraInputs(r, o.plan))
    }
    step.done()
    publish.rendition(r.name, files)
  }
}
