/**
 * The early look at an upload still arriving: ffprobe on the first MiB of its file tells a
 * file that is clearly no audio or video (text, an archive, a program, a still image), or one
 * whose header declares more than MEDIA_MAX_DURATION, before the client sends the rest. Only a
 * clear answer refuses: a container ffprobe cannot judge from its head (MP4/MOV with the moov
 * box last), bytes of no known kind, a crash or a timeout is "can't tell", and the file is
 * judged whole after completion.
 */
import {open} from 'node:fs/promises'
import ms from 'ms'
import {FfprobeFailed, runFfprobe} from './ffprobe-run.js'
import type {MediaTools} from './media-tools.js'
import {notMediaReason} from './probe.js'

export interface EarlyProbeOptions {
  /** MEDIA_MAX_DURATION in ms; unset: no limit. */
  maxDurationMs?: number | undefined
  /** Longest the look may take; past it, can't tell. */
  timeoutMs: number
}

/**
 * Heads that are certainly not audio or video, by their magic numbers. Only these and text are
 * refused where ffprobe recognised nothing: bytes of no known kind (random data, a format this
 * ffprobe lacks) are judged whole, as before.
 */
const NOT_MEDIA_SIGNATURES: [Buffer, string][] = [
  [Buffer.from('PK\x03\x04', 'latin1'), 'a ZIP archive'],
  [Buffer.from('\x7fELF', 'latin1'), 'a program'],
  [Buffer.from('MZ', 'latin1'), 'a Windows program'],
  [Buffer.from([0xcf, 0xfa, 0xed, 0xfe]), 'a program'],
  [Buffer.from([0xce, 0xfa, 0xed, 0xfe]), 'a program'],
  [Buffer.from('%PDF-', 'latin1'), 'a PDF document'],
  [Buffer.from([0x1f, 0x8b]), 'a gzip archive'],
  [Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]), 'a 7z archive'],
  [Buffer.from('Rar!\x1a\x07', 'latin1'), 'a RAR archive'],
]

/** Why a head ffprobe could not read is certainly no media (text, an archive, a program), or undefined. */
async function certainlyNotMedia(file: string): Promise<string | undefined> {
  const handle = await open(file, 'r')
  let head: Buffer
  try {
    const buffer = Buffer.alloc(4096)
    const {bytesRead} = await handle.read(buffer, 0, buffer.length, 0)
    head = buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
  const known = NOT_MEDIA_SIGNATURES.find(([magic]) => head.subarray(0, magic.length).equals(magic))
  if (known) return `file is not a video (it is ${known[1]})`
  const printable = head.filter((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127) || b >= 0x80).length
  // UTF-8 text: ASCII and multi-byte sequences, no control bytes.
  if (head.length > 0 && printable / head.length > 0.98) return 'file is not a video (it contains text)'
  return undefined
}

/** A reason to refuse the upload now, written for its uploader, or undefined (fine, or can't tell). */
export type HeadVerdict = (file: string) => Promise<string | undefined>

export function earlyProbe(tools: MediaTools, options: EarlyProbeOptions): HeadVerdict {
  return async (file) => {
    let data
    try {
      data = await runFfprobe(tools, file, options.timeoutMs)
    } catch (error) {
      if (!(error instanceof FfprobeFailed) || error.failure.kind !== 'refused') return undefined
      // ffprobe recognised no format at all (an MP4/MOV whose moov box comes last reads the same
      // from its head, "moov atom not found": its head matches none of the signatures below).
      if (!/Invalid data found when processing input/.test(error.stderr)) return undefined
      return certainlyNotMedia(file)
    }
    // A clear answer only: past AVPROBE_SCORE_RETRY (25), the score ffmpeg trusts without reading
    // more (PNG scores 99, a JPEG's markers 26); a guess from a few bytes of noise scores less.
    const notMedia = notMediaReason(data)
    if (notMedia && Number((data.format as {probe_score?: unknown}).probe_score) > 25) return notMedia
    const declared = Number(data.format.duration)
    if (options.maxDurationMs && Number.isFinite(declared) && declared * 1000 > options.maxDurationMs) {
      return `the file is ${ms(Math.round(declared * 1000), {long: true})} long, more than the ${ms(options.maxDurationMs, {long: true})} this service accepts`
    }
    return undefined
  }
}
