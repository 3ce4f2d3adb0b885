/**
 * Runs one fluent-ffmpeg command to completion, guarding against fluent-ffmpeg's pitfalls:
 * - its percent is wrong with -ss, -t or several outputs, and listening to its 'progress'
 *   event makes it run a hidden ffprobe of the input beside every encode: we read the
 *   timemark from ffmpeg's stats lines on stderr ourselves and compute progress against the
 *   duration we expect to write, clamped 0..100 and never going back;
 * - it keeps stderr only in a ring of `stdoutLines`: we keep our own tail for error messages;
 * - its kill() and timeout signal one pid and do not wait: we kill the whole process tree and
 *   settle only once the process has exited (no orphan ffmpeg, no file still being written).
 */
import {readdir, readFile} from 'node:fs/promises'
import type {FfmpegCommand} from 'fluent-ffmpeg'
import {FfmpegFailed, FfmpegTimedOut} from './errors.js'
import {lowerPriority, type MediaTools} from './media-tools.js'

export interface FfmpegRunOptions {
  /** Seconds of media this run writes (per output), for progress. */
  outputDuration: number
  timeoutMs: number
  onProgress?: (percent: number) => void
  /** Aborting kills the run (worker shutdown). */
  signal?: AbortSignal
  /** Told the command line once ffmpeg started (logs, the benchmark's baseline). */
  onCommand?: (commandLine: string) => void
}

const STDERR_TAIL_LINES = 200

/** "01:02:03.45" to seconds; NaN for what ffmpeg prints before the first frame ("-577014:32:22.77", "N/A"). */
export function timemarkSeconds(timemark: string): number {
  const match = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(timemark.trim())
  if (!match) return Number.NaN
  return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3])
}

/** The `time=` of one of ffmpeg's stats lines ("frame=  50 fps=25 ... time=00:00:02.00 bitrate=..."), in seconds; NaN for any other line. */
export function statsLineSeconds(line: string): number {
  const match = /(?:^|\s)time=\s*(\S+)/.exec(line)
  return match ? timemarkSeconds(match[1]!) : Number.NaN
}

/** Whole percent of `expected` seconds written so far, 0..100. */
export function progressPercent(writtenSeconds: number, expected: number): number {
  if (!Number.isFinite(writtenSeconds) || !(expected > 0)) return 0
  return Math.min(100, Math.max(0, Math.floor((writtenSeconds / expected) * 100)))
}

/** Shell-quoted, so the line in an error message can be pasted into a terminal. */
function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`
}

/** The pid and all its descendants, children before parents, from /proc (Linux). */
async function processTree(root: number): Promise<number[]> {
  const children = new Map<number, number[]>()
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
  }
  const order: number[] = []
  const visit = (pid: number) => {
    for (const child of children.get(pid) ?? []) visit(child)
    order.push(pid)
  }
  visit(root)
  return order
}

async function killTree(pid: number): Promise<void> {
  for (const member of await processTree(pid)) {
    try {
      process.kill(member, 'SIGKILL')
    } catch {}
  }
}

/** What a finished run said: its command line and the tail of its stderr (for errors a later check raises). */
export interface FfmpegRunResult {
  commandLine: string
  stderr: string
}

export function runFfmpeg(tools: MediaTools, command: FfmpegCommand, options: FfmpegRunOptions): Promise<FfmpegRunResult> {
  const stderr: string[] = []
  let commandLine = tools.ffmpegPath
  let timedOut = false
  let best = -1
  let timer: NodeJS.Timeout | undefined
  let pid: number | undefined
  const stop = () => {
    if (pid !== undefined) void killTree(pid)
  }

  return new Promise<FfmpegRunResult>((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', stop)
      const tail = stderr.join('\n')
      if (!error) return resolve({commandLine, stderr: tail})
      if (timedOut) return reject(new FfmpegTimedOut(options.timeoutMs, commandLine, tail))
      if (options.signal?.aborted) return reject(new FfmpegFailed('ffmpeg was stopped: the worker is shutting down', commandLine, tail))
      reject(new FfmpegFailed(`ffmpeg failed: ${error.message.split('\n')[0]}`, commandLine, tail))
    }
    command
      .setFfmpegPath(tools.ffmpegPath)
      .on('start', (line: string) => {
        commandLine = [tools.ffmpegPath, ...line.split(' ').slice(1)].map(quote).join(' ')
        options.onCommand?.(commandLine)
        pid = (command as unknown as {ffmpegProc?: {pid?: number}}).ffmpegProc?.pid
        lowerPriority(pid, tools)
        timer = setTimeout(() => {
          timedOut = true
          stop()
        }, options.timeoutMs)
        if (options.signal?.aborted) stop()
        options.signal?.addEventListener('abort', stop, {once: true})
      })
      .on('stderr', (line: string) => {
        stderr.push(line)
        if (stderr.length > STDERR_TAIL_LINES) stderr.shift()
        const written = statsLineSeconds(line)
        if (Number.isNaN(written)) return
        const percent = progressPercent(written, options.outputDuration)
        if (percent > best) {
          best = percent
          options.onProgress?.(percent)
        }
      })
      // fluent-ffmpeg emits 'end'/'error' only after the process exited and stderr closed.
      .on('end', () => settle())
      .on('error', (error: Error) => settle(error))
      .run()
  })
}
