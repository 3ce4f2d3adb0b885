/**
 * The RFC 6381 CODECS string of what we encoded, read back from the output (ffprobe), since the
 * level x264 picks depends on size, frame rate and bitrate: 1080p above 30 fps is 4.2, not 4.0.
 */
import {FfmpegFailed} from './errors.js'
import {runTool, type MediaTools} from './media-tools.js'

/** profile_idc and constraint flags (ISO/IEC 14496-10 A.2) by ffprobe's profile name. */
const AVC_PROFILES: Record<string, string> = {
  'Constrained Baseline': '42e0',
  Baseline: '4200',
  Main: '4d00',
  High: '6400',
  'High 10': '6e00',
  'High 4:2:2': '7a00',
  'High 4:4:4 Predictive': 'f400',
}

/** `avc1.PPCCLL` from ffprobe's profile name and level (30 for 3.0, 42 for 4.2). */
export function avcCodecString(profile: string, level: number): string {
  const idc = AVC_PROFILES[profile]
  if (!idc || !(level > 0)) throw new Error(`no CODECS string for H.264 profile ${JSON.stringify(profile)} level ${level}`)
  return `avc1.${idc}${level.toString(16).padStart(2, '0')}`
}

/** The CODECS entry of the first video stream of an H.264 file we wrote (an HLS segment, the MP4). */
export async function videoCodecOf(tools: MediaTools, file: string): Promise<string> {
  const args = ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,profile,level', '-of', 'json', file]
  let stdout: string
  try {
    ;({stdout} = await runTool(tools, tools.ffprobePath, args, {timeout: 30_000}))
  } catch (error) {
    throw new FfmpegFailed('ffprobe could not read an encoded rendition', [tools.ffprobePath, ...args].join(' '), String((error as {stderr?: string}).stderr ?? error))
  }
  const stream = (JSON.parse(stdout) as {streams: {codec_name?: string; profile?: string; level?: number}[]}).streams[0]
  if (stream?.codec_name !== 'h264') throw new FfmpegFailed(`an encoded rendition is ${stream?.codec_name ?? 'without video'}, not H.264`, [tools.ffprobePath, ...args].join(' '), stdout)
  return avcCodecString(stream.profile ?? '', stream.level ?? 0)
}
