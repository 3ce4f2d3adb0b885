/**
 * probeMedia: what a file holds (duration, streams, codecs, dimensions, rotation, bitrate), and
 * a verdict on whether we can play it. Unplayable inputs throw UnplayableMedia with a reason
 * the uploader understands; that is permanent, no retry changes a file.
 */
import {spawn} from 'node:child_process'
import {open, stat} from 'node:fs/promises'
import {createInterface} from 'node:readline'
import type {FfprobeData, FfprobeStream} from 'fluent-ffmpeg'
import {FfmpegFailed, FfmpegTimedOut, UnplayableMedia} from './errors.js'
import {probeWithFfmpeg} from './ffmpeg-input-probe.js'
import {DEFAULT_PROBE_TIMEOUT_MS, FfprobeFailed, runFfprobe} from './ffprobe-run.js'
import {lowerPriority, runTool, type MediaTools} from './media-tools.js'
import {truncatedPercent} from './truncation.js'

export interface VideoStreamInfo {
  /** The stream's index in the file. */
  index?: number
  codec: string
  /** As stored. */
  width: number
  height: number
  /** Clockwise degrees a player turns the picture: 0, 90, 180 or 270. */
  rotation: number
  /** As shown, after the pixel aspect ratio and rotation: what renditions and pictures are sized from. */
  displayWidth: number
  displayHeight: number
  frameRate: number | null
  bitrate: number | null
  /** Seconds of picture when the stream says: less than the file's for a still beside minutes of audio. */
  duration?: number | null
  /** Fields woven into frames (camcorders, broadcast): deinterlaced before anything else. */
  interlaced?: boolean
  /** As ffprobe names them (`arib-std-b67`, `bt2020`, `bt2020nc`); null when untagged. */
  color?: {transfer: string | null; primaries: string | null; matrix: string | null}
}

export interface AudioStreamInfo {
  codec: string
  channels: number
  sampleRate: number
  bitrate: number | null
}

export interface MediaProbe {
  formatName: string
  /** Seconds. */
  duration: number
  size: number
  bitrate: number | null
  video: VideoStreamInfo | null
  audio: AudioStreamInfo | null
  /** Cover art (an attached picture: MP3's APIC, M4A's covr), when the file has one. */
  cover?: {index: number; width: number; height: number} | null
  streams: {index: number; type: string; codec: string | null}[]
}

const IMAGE_FORMATS = /(^|,)(image2|\w+_pipe|gif|webp|apng)(,|$)/

const num = (value: unknown): number | null => {
  const n = typeof value === 'number' ? value : Number(value)
  return Number.isFinite(n) && n > 0 ? n : null
}

/** Clockwise display rotation from the display matrix (counter-clockwise, negative) or the legacy rotate tag. */
export function displayRotation(stream: FfprobeStream): number {
  const matrix = Number((stream as {rotation?: unknown}).rotation)
  const degrees = Number.isFinite(matrix) && matrix !== 0 ? -matrix : Number(stream.tags?.rotate ?? 0)
  const normalized = (((Math.round(degrees / 90) * 90) % 360) + 360) % 360
  return Number.isFinite(normalized) ? normalized : 0
}

function frameRate(rate: string | undefined): number | null {
  const [n, d] = (rate ?? '').split('/').map(Number)
  return n && d ? Math.round((n / d) * 1000) / 1000 : null
}

/** "16:15" to 16/15; 1 for square pixels or no answer ("0:1", "N/A"). */
function sampleAspect(ratio: string | undefined): number {
  const [n, d] = (ratio ?? '').split(':').map(Number)
  return n && d && n > 0 && d > 0 ? n / d : 1
}

function videoInfo(stream: FfprobeStream): VideoStreamInfo {
  // Anamorphic sources (DV, broadcast, some phones) store narrower pixels than they show.
  const width = stream.width ?? 0
  const height = stream.height ?? 0
  const shownWidth = Math.max(1, Math.round(width * sampleAspect(stream.sample_aspect_ratio)))
  const rotation = displayRotation(stream)
  const sideways = rotation === 90 || rotation === 270
  return {
    index: stream.index,
    codec: stream.codec_name ?? 'unknown',
    width,
    height,
    rotation,
    displayWidth: sideways ? height : shownWidth,
    displayHeight: sideways ? shownWidth : height,
    frameRate: frameRate(stream.avg_frame_rate) ?? frameRate(stream.r_frame_rate),
    bitrate: num(stream.bit_rate),
    duration: num(stream.duration),
    color: {transfer: stream.color_transfer ?? null, primaries: stream.color_primaries ?? null, matrix: stream.color_space ?? null},
  }
}

/** A short description of a file ffprobe cannot read, from its first bytes. */
export async function describeUnreadable(file: string): Promise<string> {
  const handle = await open(file, 'r')
  try {
    const head = Buffer.alloc(512)
    const {bytesRead} = await handle.read(head, 0, head.length, 0)
    const sample = head.subarray(0, bytesRead)
    const printable = sample.filter((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127) || b >= 0xc0).length
    if (bytesRead > 0 && printable / bytesRead > 0.95) return 'file is not a video (it contains text)'
    return 'file is not a video (its format is not one we recognise)'
  } finally {
    await handle.close()
  }
}

/**
 * ffprobe's answer; where ffprobe crashes (the npm-shipped build on MPEG-TS), ffmpeg's own
 * description of its input instead. A crash is certain to repeat, so it is never left to a
 * retry: the fallback answers, or the file is unplayable (permanent) with the reason.
 */
async function describeMedia(tools: MediaTools, file: string): Promise<{data: FfprobeData; crashed: boolean}> {
  try {
    return {data: await runFfprobe(tools, file), crashed: false}
  } catch (error) {
    if (!(error instanceof FfprobeFailed)) throw error
    const {failure, commandLine} = error
    if (failure.kind === 'refused') throw new UnplayableMedia(await describeUnreadable(file), {commandLine, stderr: failure.stderr})
    if (failure.kind === 'timed-out') throw new FfmpegTimedOut(tools.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS, commandLine, failure.stderr)
    if (failure.kind === 'not-run') throw new FfmpegFailed(`ffprobe failed: ${error.message}`, commandLine, '')
    try {
      return {data: await probeWithFfmpeg(tools, file), crashed: true}
    } catch (fallback) {
      throw new UnplayableMedia(`the file could not be read (ffprobe ${tools.ffprobePath} crashed on it, ${failure.signal}, and ffmpeg could not describe it)`, {
        commandLine,
        stderr: `${failure.stderr}\n${(fallback as FfmpegFailed).stderr ?? ''}`,
      })
    }
  }
}

export async function probeMedia(tools: MediaTools, file: string): Promise<MediaProbe> {
  const {size} = await stat(file)
  if (size === 0) throw new UnplayableMedia('file is empty')
  const truncatedAt = await truncatedPercent(file, size)
  if (truncatedAt !== undefined) throw new UnplayableMedia(`file is truncated at ${truncatedAt}%`)

  const {data, crashed} = await describeMedia(tools, file)
  // Chrome's MediaRecorder writes WebM with no Duration element (nor stream durations). The
  // packet pass is ffprobe's: skipped where ffprobe crashes.
  const declared = num(data.format.duration) ?? data.streams.map((s) => num(s.duration)).find((d) => d !== null)
  const probe = judge(data, size, declared === undefined && data.streams.length > 0 && !crashed ? await lastPacketEnd(tools, file) : undefined)
  if (probe.video) probe.video.interlaced = await isInterlaced(tools, file, data.streams.find((s) => s.index === probe.video!.index)?.field_order)
  return probe
}

const INTERLACED_FIELD_ORDERS = new Set(['tt', 'bb', 'tb', 'bt'])
/** Frames idet looks at when the stream does not say how it is scanned. */
const IDET_FRAMES = 100

/**
 * The stream's own word when it gives one (field_order); otherwise idet over its first frames:
 * interlaced when most frames it could classify have fields of their own.
 */
export async function isInterlaced(tools: MediaTools, file: string, fieldOrder: string | undefined): Promise<boolean> {
  if (fieldOrder && INTERLACED_FIELD_ORDERS.has(fieldOrder)) return true
  if (fieldOrder === 'progressive') return false
  const args = ['-hide_banner', '-nostats', '-i', file, '-map', '0:v:0', '-vf', 'idet', '-frames:v', String(IDET_FRAMES), '-an', '-f', 'null', '-']
  let stderr: string
  try {
    ;({stderr} = await runTool(tools, tools.ffmpegPath, args, {timeout: 120_000}))
  } catch (error) {
    throw new FfmpegFailed('ffmpeg could not tell whether the video is interlaced', [tools.ffmpegPath, ...args].join(' '), String((error as {stderr?: string}).stderr ?? error))
  }
  const counts = /Multi frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)\s+Progressive:\s*(\d+)/.exec(stderr)
  if (!counts) return false
  const [tff, bff, progressive] = counts.slice(1).map(Number) as [number, number, number]
  return tff + bff > progressive
}

/**
 * Where the last packet of any stream ends, in seconds (pts + duration), from a pass over the
 * packet index (no decoding: a second or so for an hour of WebM); null when there is none.
 */
export async function lastPacketEnd(tools: MediaTools, file: string): Promise<number | null> {
  const args = ['-v', 'error', '-show_entries', 'packet=pts_time,duration_time', '-of', 'csv=p=0', file]
  const child = spawn(tools.ffprobePath, args, {stdio: ['ignore', 'pipe', 'pipe']})
  lowerPriority(child.pid, tools)
  // The packet index of hours of WebM reads in seconds: past MEDIA_PROBE_TIMEOUT it is stuck.
  const timeoutMs = tools.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, timeoutMs)
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)))
  const exited = new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve))
  let end = 0
  for await (const line of createInterface({input: child.stdout})) {
    const [pts, duration] = line.split(',').map(Number)
    if (Number.isFinite(pts)) end = Math.max(end, pts! + (Number.isFinite(duration) ? duration! : 0))
  }
  const code = await exited.finally(() => clearTimeout(timer))
  if (timedOut) throw new FfmpegTimedOut(timeoutMs, [tools.ffprobePath, ...args].join(' '), stderr)
  if (code !== 0) throw new FfmpegFailed(`ffprobe failed reading packets (exit ${code})`, [tools.ffprobePath, ...args].join(' '), stderr)
  return end > 0 ? Math.round(end * 1000) / 1000 : null
}

/** "a JPEG image", "an APNG image": the names people know, not the decoder's (mjpeg). */
function imageName(codec: string): string {
  const name = ({mjpeg: 'JPEG', jpegls: 'JPEG', webp_pipe: 'WebP', webp: 'WebP'} as Record<string, string>)[codec] ?? codec.replace(/_pipe$/, '').toUpperCase()
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name} image`
}

/**
 * Why what ffprobe read is no audio or video at all (a still image, text, a subtitle file), or
 * undefined: true of a file's first MiB as much as of the whole file (early-probe.ts asks too).
 */
export function notMediaReason(data: FfprobeData): string | undefined {
  const formatName = data.format.format_name ?? 'unknown'
  const videoStream = data.streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic)
  if (IMAGE_FORMATS.test(formatName)) return `file is not a video (it is ${imageName(videoStream?.codec_name ?? formatName)})`
  // The tty demuxer takes a .txt or .ans file for a video of its characters.
  if (formatName === 'tty') return 'file is not a video (it contains text)'
  if (!videoStream && !data.streams.some((s) => s.codec_type === 'audio')) return 'no video stream found'
  return undefined
}

/** From ffprobe's answer to a MediaProbe, or the reason it cannot be played. */
export function judge(data: FfprobeData, size: number, packetsEnd?: number | null): MediaProbe {
  const formatName = data.format.format_name ?? 'unknown'
  const streams = data.streams.map((s) => ({index: s.index, type: s.codec_type ?? 'unknown', codec: s.codec_name ?? null}))
  const videoStream = data.streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic)
  const audioStream = data.streams.find((s) => s.codec_type === 'audio')
  const cover = data.streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic)
  const notMedia = notMediaReason(data)
  if (notMedia) throw new UnplayableMedia(notMedia)
  if (videoStream && (!videoStream.codec_name || !videoStream.width || !videoStream.height)) {
    throw new UnplayableMedia('the video stream uses a codec we cannot decode')
  }
  const duration = num(data.format.duration) ?? num(videoStream?.duration) ?? num(audioStream?.duration) ?? num(packetsEnd)
  if (duration === null) throw new UnplayableMedia('file has no duration; it may be damaged')
  return {
    formatName,
    duration,
    size,
    bitrate: num(data.format.bit_rate),
    video: videoStream ? videoInfo(videoStream) : null,
    audio: audioStream
      ? {codec: audioStream.codec_name ?? 'unknown', channels: audioStream.channels ?? 0, sampleRate: Number(audioStream.sample_rate ?? 0), bitrate: num(audioStream.bit_rate)}
      : null,
    streams,
    cover: cover?.width && cover.height ? {index: cover.index, width: cover.width, height: cover.height} : null,
  }
}
