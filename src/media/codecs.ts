/**
 * The RFC 6381 CODECS string of what we encoded, read back from the output, since the
 * level x264 picks depends on size, frame rate and bitrate: 1080p above 30 fps is 4.2, not 4.0.
 */
import {open} from 'node:fs/promises'
import {FfmpegFailed} from './errors.js'

const TS_PACKET = 188
/** Enough of a segment to reach its first keyframe's SPS (it opens the first video PES). */
const HEAD_BYTES = 256 * 1024

/** The payload bytes of the MPEG-TS packets of the first PID carrying a video PES (stream id 0xE0-0xEF). */
function videoPayload(ts: Buffer): Buffer {
  const parts: Buffer[] = []
  let videoPid: number | undefined
  for (let at = 0; at + TS_PACKET <= ts.length; at += TS_PACKET) {
    if (ts[at] !== 0x47) continue
    const pid = ((ts[at + 1]! & 0x1f) << 8) | ts[at + 2]!
    const adaptation = (ts[at + 3]! >> 4) & 0x3
    if (!(adaptation & 0x1)) continue
    const start = at + 4 + (adaptation & 0x2 ? 1 + ts[at + 4]! : 0)
    const payload = ts.subarray(start, at + TS_PACKET)
    const videoPes = payload[0] === 0 && payload[1] === 0 && payload[2] === 1 && (payload[3]! & 0xf0) === 0xe0
    if (videoPid === undefined && videoPes) videoPid = pid
    if (pid === videoPid) parts.push(payload)
  }
  return Buffer.concat(parts)
}

/**
 * The CODECS entry (`avc1.PPCCLL`: profile_idc, constraint flags, level_idc) of an H.264 HLS
 * segment we wrote, from the first SPS in its bytes. Read directly rather than with ffprobe: the
 * static fallback ffprobe crashes on MPEG-TS.
 */
export async function videoCodecOf(file: string): Promise<string> {
  const handle = await open(file, 'r')
  let head: Buffer
  try {
    const buffer = Buffer.alloc(HEAD_BYTES)
    const {bytesRead} = await handle.read(buffer, 0, HEAD_BYTES, 0)
    head = buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
  const video = videoPayload(head)
  for (let i = 0; i + 6 < video.length; i++) {
    // A start code, then a NAL unit of type 7 (sequence parameter set).
    if (video[i] === 0 && video[i + 1] === 0 && video[i + 2] === 1 && (video[i + 3]! & 0x1f) === 7) {
      return `avc1.${[...video.subarray(i + 4, i + 7)].map((b) => b.toString(16).padStart(2, '0')).join('')}`
    }
  }
  throw new FfmpegFailed(`no H.264 sequence parameter set in the first ${HEAD_BYTES} bytes of ${file}`, `read ${file}`, '')
}
