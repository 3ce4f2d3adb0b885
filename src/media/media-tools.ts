/**
 * Which ffmpeg and ffprobe we run, and the start-up check that they and the encoders and
 * filters we need are there. Debian's binaries on PATH come first; the static builds shipped in
 * @ffmpeg-installer/@ffprobe-installer are the fallback for hosts without them.
 */
import {execFile} from 'node:child_process'
import {accessSync, chmodSync, constants, statSync} from 'node:fs'
import {createRequire} from 'node:module'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {MediaToolsMissing} from './errors.js'

const run = promisify(execFile)
const require = createRequire(import.meta.url)

export interface MediaTools {
  ffmpegPath: string
  ffprobePath: string
  /** Niceness every ffmpeg/ffprobe run gets (MEDIA_NICE); unset: the process's own. */
  nice?: number
  /** Longest one ffprobe (or `ffmpeg -i`) reading of a file may take (MEDIA_PROBE_TIMEOUT); unset: 60 s. */
  probeTimeoutMs?: number
}

/**
 * Lowers a media tool's CPU priority right after it started (no `nice` binary needed, works for
 * fluent-ffmpeg's children too); never raises it. Best effort: a process already gone is fine.
 */
export function lowerPriority(pid: number | undefined, tools: Pick<MediaTools, 'nice'>): void {
  if (pid === undefined || !tools.nice) return
  try {
    if (os.getPriority(pid) < tools.nice) os.setPriority(pid, tools.nice)
  } catch {}
}

/** Runs ffmpeg or ffprobe to completion at the tools' priority; rejects like execFile (with its stderr). */
export function runTool(tools: MediaTools, binary: string, args: string[], options: {timeout: number; maxBuffer?: number}): Promise<{stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = execFile(binary, args, {maxBuffer: 16 << 20, ...options}, (error, stdout, stderr) =>
      error ? reject(Object.assign(error, {stderr})) : resolve({stdout, stderr})
    )
    lowerPriority(child.pid, tools)
  })
}

export const REQUIRED_ENCODERS = ['libx264', 'aac', 'mjpeg'] as const
export const REQUIRED_FILTERS = ['scale', 'thumbnail', 'tile', 'signalstats', 'select', 'zscale', 'tonemap'] as const

function onPath(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue
    const candidate = path.join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

function bundled(pkg: string): string | undefined {
  let binary: string
  try {
    binary = (require(pkg) as {path: string}).path
  } catch {
    return undefined
  }
  return executable(binary)
}

/**
 * The binary, made executable when it is not: the installer packages ship it without the
 * bit and set it in a postinstall script, which `npm install --ignore-scripts` (or an npm that
 * does not allow the script) skips. Undefined when it is missing or cannot be made so.
 */
export function executable(binary: string): string | undefined {
  try {
    accessSync(binary, constants.X_OK)
    return binary
  } catch {}
  try {
    chmodSync(binary, statSync(binary).mode | 0o111)
    accessSync(binary, constants.X_OK)
    return binary
  } catch {
    return undefined
  }
}

export interface MediaToolsConfig {
  /** Where to look (the process's PATH, from config: nothing here reads process.env). */
  searchPath: string
  ffmpegPath?: string | undefined
  ffprobePath?: string | undefined
  mediaNice?: number | undefined
  mediaProbeTimeout?: number | undefined
}

/** Explicit paths first, then PATH, then the npm-shipped builds. */
export function locateMediaTools(config: MediaToolsConfig): MediaTools {
  const ffmpegPath = config.ffmpegPath ?? onPath('ffmpeg', config.searchPath) ?? bundled('@ffmpeg-installer/ffmpeg')
  const ffprobePath = config.ffprobePath ?? onPath('ffprobe', config.searchPath) ?? bundled('@ffprobe-installer/ffprobe')
  const missing = [
    ...(ffmpegPath ? [] : ['ffmpeg (not on PATH, and @ffmpeg-installer/ffmpeg has no binary for this platform, or it cannot be made executable)']),
    ...(ffprobePath ? [] : ['ffprobe (not on PATH, and @ffprobe-installer/ffprobe has no binary for this platform, or it cannot be made executable)']),
  ]
  if (missing.length > 0) throw new MediaToolsMissing(missing)
  return {
    ffmpegPath: ffmpegPath!,
    ffprobePath: ffprobePath!,
    ...(config.mediaNice ? {nice: config.mediaNice} : {}),
    ...(config.mediaProbeTimeout ? {probeTimeoutMs: config.mediaProbeTimeout} : {}),
  }
}

/** Names in the first column after the flags in `ffmpeg -encoders` / `-filters` listings. */
function listedNames(listing: string): Set<string> {
  const names = new Set<string>()
  for (const line of listing.split('\n')) {
    const match = /^\s*[A-Z.|]{3,8}\s+(\S+)\s/.exec(line)
    if (match) names.add(match[1]!)
  }
  return names
}

const checks = new Map<string, Promise<{ffmpegVersion: string; ffprobeVersion: string}>>()

/** checkMediaTools, once per pair of binaries in this process (every consumer asks at start-up). */
export function checkMediaToolsOnce(tools: MediaTools): Promise<{ffmpegVersion: string; ffprobeVersion: string}> {
  const key = `${tools.ffmpegPath}\0${tools.ffprobePath}`
  let check = checks.get(key)
  if (!check) checks.set(key, (check = checkMediaTools(tools)))
  return check
}

/** Runs each tool once and lists everything we need that is not there; throws MediaToolsMissing. */
export async function checkMediaTools(tools: MediaTools): Promise<{ffmpegVersion: string; ffprobeVersion: string}> {
  const missing: string[] = []
  const version = async (binary: string, label: string) => {
    try {
      const {stdout} = await run(binary, ['-hide_banner', '-version'], {timeout: 10_000})
      return stdout.split('\n')[0] ?? ''
    } catch (error) {
      missing.push(`${label} at ${binary} does not run (${(error as Error).message.split('\n')[0]})`)
      return ''
    }
  }
  const ffmpegVersion = await version(tools.ffmpegPath, 'ffmpeg')
  const ffprobeVersion = await version(tools.ffprobePath, 'ffprobe')
  if (ffmpegVersion) {
    const [encoders, filters] = await Promise.all(
      ['-encoders', '-filters'].map(async (flag) => listedNames((await run(tools.ffmpegPath, ['-hide_banner', flag], {timeout: 10_000})).stdout))
    )
    for (const name of REQUIRED_ENCODERS) if (!encoders!.has(name)) missing.push(`ffmpeg encoder ${name} (ffmpeg at ${tools.ffmpegPath} was built without it)`)
    for (const name of REQUIRED_FILTERS) if (!filters!.has(name)) missing.push(`ffmpeg filter ${name} (ffmpeg at ${tools.ffmpegPath} was built without it)`)
  }
  if (missing.length > 0) throw new MediaToolsMissing(missing)
  return {ffmpegVersion, ffprobeVersion}
}
