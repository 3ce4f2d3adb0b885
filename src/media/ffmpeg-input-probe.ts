/**
 * What `ffmpeg -i FILE` says of its input (stderr), read into the shape of ffprobe's answer:
 * the fallback where ffprobe itself crashes on a file ffmpeg reads (the npm-shipped ffprobe
 * dies with SIGSEGV on every MPEG-TS). Only what probeMedia's judge() looks at: format name,
 * duration and bitrate, each stream's type and codec, a video's size, pixel aspect, frame rate,
 * rotation, scan and colour tags, an audio's channels and rate, attached pictures.
 */
import type {FfprobeData, FfprobeStream} from 'fluent-ffmpeg'
import {FfmpegFailed} from './errors.js'
import {runTool, type MediaTools} from './media-tools.js'
import {DEFAULT_PROBE_TIMEOUT_MS} from './ffprobe-run.js'

const CHANNELS: Record<string, number> = {mono: 1, stereo: 2, '2.1': 3, '3.0': 3, quad: 4, '4.0': 4, '5.0': 5, '5.1': 6, '6.1': 7, '7.1': 8}
const FIELD_ORDERS: Record<string, string> = {progressive: 'progressive', 'top first': 'tt', 'bottom first': 'bb', 'top coded first (swapped)': 'tb', 'bottom coded first (swapped)': 'bt'}

const seconds = (h: string, m: string, s: string) => Number(h) * 3600 + Number(m) * 60 + Number(s)

/** "a (b, c), d(e, f), g" to ["a (b, c)", "d(e, f)", "g"]: commas outside parentheses. */
function topLevelParts(text: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const char of text) {
    if (char === '(') depth++
    if (char === ')') depth--
    if (char === ',' && depth === 0) {
      parts.push(current.trim())
      current = ''
    } else current += char
  }
  return [...parts, current.trim()]
}

/** The list after a video's pixel format: "yuv420p(tv, bt2020nc/bt2020/arib-std-b67, top first)". */
function pixelFormatDetails(rest: string, stream: Record<string, unknown>): void {
  const details = /^\w+\((.*)\)$/.exec(topLevelParts(rest)[1] ?? '')?.[1]
  for (const part of details ? topLevelParts(details) : []) {
    if (FIELD_ORDERS[part]) stream.field_order = FIELD_ORDERS[part]
    else if (part.includes('/')) [stream.color_space, stream.color_primaries, stream.color_transfer] = part.split('/')
    else if (/^(bt|smpte|arib)/.test(part)) stream.color_space = stream.color_primaries = stream.color_transfer = part
  }
}

export function parseFfmpegInput(stderr: string): FfprobeData | undefined {
  const input = /^Input #0, (.+?), from /m.exec(stderr)
  if (!input) return undefined
  const format: Record<string, unknown> = {format_name: input[1]}
  const duration = /^\s+Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)/m.exec(stderr)
  if (duration) format.duration = seconds(duration[1]!, duration[2]!, duration[3]!)
  const bitrate = /^\s+Duration: .*bitrate: (\d+) kb\/s/m.exec(stderr)
  if (bitrate) format.bit_rate = Number(bitrate[1]) * 1000
  const streams: Record<string, unknown>[] = []
  for (const line of stderr.split('\n')) {
    const match = /^\s+Stream #0:(\d+)[^:]*: (Video|Audio|Subtitle|Data|Attachment): (\w+)(.*)$/.exec(line)
    if (match) {
      const [, index, type, codec, rest] = match as unknown as [string, string, string, string, string]
      const stream: Record<string, unknown> = {index: Number(index), codec_type: type.toLowerCase(), codec_name: codec, disposition: {attached_pic: rest.includes('(attached pic)') ? 1 : 0}}
      if (type === 'Video') {
        const size = /,\s(\d{1,5})x(\d{1,5})(?=[\s,]|$)/.exec(rest)
        if (size) [stream.width, stream.height] = [Number(size[1]), Number(size[2])]
        const sar = /\[SAR (\d+):(\d+)/.exec(rest)
        if (sar) stream.sample_aspect_ratio = `${sar[1]}:${sar[2]}`
        const fps = /,\s([\d.]+) fps/.exec(rest)
        if (fps) stream.avg_frame_rate = `${Math.round(Number(fps[1]) * 1000)}/1000`
        // ffprobe's word for an untagged stream.
        Object.assign(stream, {color_space: 'unknown', color_primaries: 'unknown', color_transfer: 'unknown'})
        pixelFormatDetails(rest, stream)
      } else if (type === 'Audio') {
        const rate = /,\s(\d+) Hz/.exec(rest)
        if (rate) stream.sample_rate = Number(rate[1])
        const layout = /Hz,\s([^,]+)/.exec(rest)?.[1]?.trim() ?? ''
        stream.channels = CHANNELS[layout.replace(/\(.*\)$/, '')] ?? Number(/^(\d+) channels/.exec(layout)?.[1] ?? 0)
      }
      const kbps = /,\s(\d+) kb\/s/.exec(rest)
      if (kbps) stream.bit_rate = Number(kbps[1]) * 1000
      streams.push(stream)
      continue
    }
    const rotation = /^\s+displaymatrix: rotation of (-?[\d.]+) degrees/.exec(line)
    if (rotation && streams.length > 0) streams.at(-1)!.rotation = Number(rotation[1])
  }
  return {format, streams: streams as unknown as FfprobeStream[], chapters: []} as unknown as FfprobeData
}

/** ffmpeg's description of the file, or FfmpegFailed when it cannot read it either. */
export async function probeWithFfmpeg(tools: MediaTools, file: string): Promise<FfprobeData> {
  const args = ['-hide_banner', '-nostdin', '-i', file]
  let stderr = ''
  try {
    // With no output named ffmpeg describes the input and exits 1: that is the expected end.
    ;({stderr} = await runTool(tools, tools.ffmpegPath, args, {timeout: tools.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS}))
  } catch (error) {
    stderr = String((error as {stderr?: string}).stderr ?? '')
  }
  const data = parseFfmpegInput(stderr)
  if (!data) throw new FfmpegFailed('ffmpeg could not read the file either', [tools.ffmpegPath, ...args].join(' '), stderr)
  return data
}
