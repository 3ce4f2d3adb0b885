/**
 * Runs `ffprobe -show_streams -show_format` at the tools' priority and within their probe
 * timeout, and reads its answer into fluent-ffmpeg's FfprobeData (the parser below is
 * fluent-ffmpeg's own, so every field keeps its shape: flattened side data such as `rotation`,
 * `tags`, `disposition`). fluent-ffmpeg's ffprobe() had neither a timeout nor a niceness.
 */
import type {FfprobeData} from 'fluent-ffmpeg'
import {runTool, type MediaTools} from './media-tools.js'

/** How a probe ended when it did not answer: ffprobe refused the file, crashed, or ran too long. */
export type ProbeFailure =
  | {kind: 'refused'; code: number; stderr: string}
  | {kind: 'crashed'; signal: string; stderr: string}
  | {kind: 'timed-out'; stderr: string}
  | {kind: 'not-run'; message: string}

export class FfprobeFailed extends Error {
  override name = 'FfprobeFailed'
  constructor(
    readonly failure: ProbeFailure,
    readonly commandLine: string
  ) {
    super(`ffprobe ${failure.kind === 'refused' ? `exited with code ${failure.code}` : failure.kind === 'crashed' ? `crashed (${failure.signal})` : failure.kind === 'timed-out' ? 'ran past its time and was killed' : `could not be run: ${failure.message}`}`)
    Object.setPrototypeOf(this, new.target.prototype)
  }
  get stderr(): string {
    return 'stderr' in this.failure ? this.failure.stderr : ''
  }
}

/** 60 s unless MEDIA_PROBE_TIMEOUT says otherwise: reading a header never takes long. */
export const DEFAULT_PROBE_TIMEOUT_MS = 60_000

/**
 * An exit code past 128 is how a shell wrapper reports its child's signal (139: SIGSEGV), and
 * the npm-shipped ffprobe dies with SIGSEGV on every MPEG-TS: both are crashes, not verdicts.
 */
function failureOf(error: NodeJS.ErrnoException & {killed?: boolean; signal?: string | null; stderr?: string}, timeoutMs: number): ProbeFailure {
  const stderr = String(error.stderr ?? '')
  if (typeof error.code === 'string') return {kind: 'not-run', message: error.message}
  if (error.killed && error.signal) return {kind: 'timed-out', stderr: `${stderr}\n(killed after ${timeoutMs} ms)`}
  if (error.signal) return {kind: 'crashed', signal: error.signal, stderr}
  const code = Number(error.code)
  if (code > 128) return {kind: 'crashed', signal: `exit ${code}`, stderr}
  return {kind: 'refused', code, stderr}
}

export async function runFfprobe(tools: MediaTools, file: string, timeoutMs = tools.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS): Promise<FfprobeData> {
  const args = ['-show_streams', '-show_format', file]
  try {
    const {stdout} = await runTool(tools, tools.ffprobePath, args, {timeout: timeoutMs, maxBuffer: 64 << 20})
    return parseFfprobeOutput(stdout)
  } catch (error) {
    throw new FfprobeFailed(failureOf(error as NodeJS.ErrnoException, timeoutMs), [tools.ffprobePath, ...args].join(' '))
  }
}

/** fluent-ffmpeg's parser of ffprobe's default output (lib/ffprobe.js), typed. */
export function parseFfprobeOutput(out: string): FfprobeData {
  const lines = out.split(/\r\n|\r|\n/).filter((line) => line.length > 0)
  const data = {streams: [] as Record<string, unknown>[], format: {} as Record<string, unknown>, chapters: [] as Record<string, unknown>[]}
  const parseBlock = (name: string) => {
    const block: Record<string, unknown> = {}
    for (let line = lines.shift(); line !== undefined; line = lines.shift()) {
      if (line.toLowerCase() === `[/${name}]`) return block
      if (line.startsWith('[')) continue
      const kv = /^([^=]+)=(.*)$/.exec(line)
      if (kv) block[kv[1]!] = !/^TAG:/.test(kv[1]!) && /^[0-9]+(\.[0-9]+)?$/.test(kv[2]!) ? Number(kv[2]) : kv[2]
    }
    return block
  }
  for (let line = lines.shift(); line !== undefined; line = lines.shift()) {
    if (/^\[stream/i.test(line)) data.streams.push(parseBlock('stream'))
    else if (/^\[chapter/i.test(line)) data.chapters.push(parseBlock('chapter'))
    else if (line.toLowerCase() === '[format]') data.format = parseBlock('format')
  }
  for (const target of [data.format, ...data.streams]) {
    for (const key of Object.keys(target)) {
      const group = key.startsWith('TAG:') ? 'tags' : key.startsWith('DISPOSITION:') ? 'disposition' : undefined
      if (!group) continue
      const into = (target[group] ??= {}) as Record<string, unknown>
      into[key.slice(group === 'tags' ? 4 : 12)] = target[key]
      delete target[key]
    }
  }
  return data as unknown as FfprobeData
}
