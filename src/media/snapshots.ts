/**
 * Still pictures of a video: a poster from a representative frame (never a black one when any
 * other exists), thumbnails at evenly spaced times, and a storyboard sprite with a WebVTT file
 * (`#xywh=`) that players use for scrubbing previews.
 */
import {mkdir, rm, stat} from 'node:fs/promises'
import path from 'node:path'
import ffmpeg from 'fluent-ffmpeg'
import {writeAtomically, writeFileAtomically} from './artifact-files.js'
import {NoFrameWritten} from './errors.js'
import {runFfmpeg, type FfmpegRunResult} from './ffmpeg-run.js'
import type {MediaTools} from './media-tools.js'
import {pictureFilters, pictureSeconds} from './picture.js'
import type {MediaProbe, VideoStreamInfo} from './probe.js'
import {even, GENERATED_STILL, storyboardInterval, thumbnailTimes} from './rendition-ladder.js'

export interface SnapshotOptions {
  tools: MediaTools
  source: string
  probe: MediaProbe & {video: VideoStreamInfo}
  outDir: string
  thumbnailCount: number
  timeoutMs: number
  signal?: AbortSignal
}

export const POSTER = 'poster.jpg'
export const STORYBOARD = {sprite: 'storyboard/sprite.jpg', vtt: 'storyboard/storyboard.vtt'}
const POSTER_MAX_WIDTH = 1280
const THUMB_WIDTH = 320
const TILE_WIDTH = 160
const STORYBOARD_COLUMNS = 10
const STORYBOARD_MAX_TILES = 100
/** Mean luma (0..255) under which a frame counts as black: fades, title cards, lens caps. */
const BLACK_LUMA = 24
const POSTER_WINDOW_SECONDS = 10
const SKIP_DARK = ['signalstats', `metadata=select:key=lavfi.signalstats.YAVG:value=${BLACK_LUMA}:function=greater`]

/**
 * A scale to the picture as shown, at most `maxWidth` wide, in square pixels: image viewers
 * ignore a JPEG's pixel aspect, so an anamorphic source's poster would look squeezed.
 */
function shownAt(video: VideoStreamInfo, maxWidth: number): string {
  const width = even(Math.min(maxWidth, video.displayWidth))
  return `scale=${width}:${even((width * video.displayHeight) / video.displayWidth)},setsar=1`
}

/**
 * One way to ask ffmpeg for a picture: input seeking (-ss before -i: fast, from the keyframe
 * before; lands past the last frame in some MPEG-TS files), output seeking (decodes from the
 * start: slow, exact), or the first frame.
 */
interface Way {
  seek: 'input' | 'output' | 'none'
  at: number
  /** Seconds read from `at`; unlimited when absent. */
  window?: number
  filters: string[]
}

/** Writes one picture to `file` the first way that yields a frame; NoFrameWritten when none does. */
async function grab(o: SnapshotOptions, file: string, what: string, ways: Way[], quality: number): Promise<void> {
  let last: FfmpegRunResult | undefined
  for (const way of ways) {
    await rm(file, {force: true})
    const command = ffmpeg({source: o.source, stdoutLines: 20})
    const position = [...(way.seek === 'none' ? [] : ['-ss', String(way.at)]), ...(way.window === undefined ? [] : ['-t', String(way.window)])]
    if (way.seek === 'input') command.inputOptions(position)
    else command.outputOptions(position)
    command.outputOptions(['-vf', way.filters.join(','), '-frames:v', '1', '-q:v', String(quality), '-f', 'image2', '-update', '1']).output(file)
    last = await runFfmpeg(o.tools, command, {outputDuration: way.window ?? 0, timeoutMs: o.timeoutMs, ...(o.signal ? {signal: o.signal} : {})})
    // ffmpeg exits 0 having written nothing when every frame was filtered out or the seek landed past the last one.
    if ((await stat(file).catch(() => null))?.size) return
  }
  throw new NoFrameWritten(what, last?.commandLine ?? o.tools.ffmpegPath, last?.stderr ?? '')
}

/** Input seeking, then output seeking (the same when `at` is 0), then the first frame. */
function seekingWays(at: number, window: number | undefined, filters: string[][], fallback: string[]): Way[] {
  const limit = window === undefined ? {} : {window}
  const seeks: Way['seek'][] = at > 0 ? ['input', 'output'] : ['input']
  return [...seeks.flatMap((seek) => filters.map((f) => ({seek, at, ...limit, filters: f}))), {seek: 'none', at: 0, filters: fallback}]
}

/** A window after the opening (often black or a title), then the frame most like its neighbours, skipping dark ones. */
async function poster(o: SnapshotOptions): Promise<string> {
  const duration = pictureSeconds(o.probe)
  const start = duration > 4 ? Math.min(duration * 0.1, 30) : 0
  const window = Math.min(POSTER_WINDOW_SECONDS, duration - start)
  const picture = pictureFilters(o.probe.video, shownAt(o.probe.video, POSTER_MAX_WIDTH))
  // Every frame in the window dark (a night scene, a black video with sound): the most representative dark frame it is.
  const ways = seekingWays(start, window, [[...picture, ...SKIP_DARK, 'thumbnail=60'], [...picture, 'thumbnail=60']], picture)
  await writeAtomically(path.join(o.outDir, POSTER), (temp) => grab(o, temp, 'the poster', ways, 3))
  return POSTER
}

/** Thumbnails made, and a NoFrameWritten for each time no way gave a picture. */
async function thumbnails(o: SnapshotOptions): Promise<{made: string[]; missing: NoFrameWritten[]}> {
  const times = thumbnailTimes(pictureSeconds(o.probe), o.thumbnailCount, o.probe.video.frameRate)
  const names = times.map((_, i) => `thumb_${String(i + 1).padStart(2, '0')}.jpg`)
  const made: string[] = []
  const missing: NoFrameWritten[] = []
  if (times.length === 0) return {made, missing}
  await writeAtomically(path.join(o.outDir, 'thumbs'), async (temp) => {
    await mkdir(temp, {recursive: true})
    for (const [i, time] of times.entries()) {
      const filters = pictureFilters(o.probe.video, shownAt(o.probe.video, THUMB_WIDTH))
      try {
        await grab(o, path.join(temp, names[i]!), `thumbnail ${i + 1} (at ${time} s)`, seekingWays(time, undefined, [filters], filters), 4)
        made.push(`thumbs/${names[i]}`)
      } catch (error) {
        if (!(error instanceof NoFrameWritten)) throw error
        missing.push(error)
      }
    }
  })
  return {made, missing}
}

export function storyboardVtt(tiles: number, interval: number, duration: number, tile: {width: number; height: number}): string {
  const stamp = (seconds: number) => {
    const ms = Math.round(seconds * 1000)
    const h = Math.floor(ms / 3_600_000)
    const m = Math.floor(ms / 60_000) % 60
    const s = Math.floor(ms / 1000) % 60
    return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}.${String(ms % 1000).padStart(3, '0')}`
  }
  const cues = Array.from({length: tiles}, (_, i) => {
    const x = (i % STORYBOARD_COLUMNS) * tile.width
    const y = Math.floor(i / STORYBOARD_COLUMNS) * tile.height
    // The last cue runs to the end, over any sound that outlasts the picture.
    const end = i === tiles - 1 ? duration : Math.min((i + 1) * interval, duration)
    return `${stamp(i * interval)} --> ${stamp(end)}\n${path.basename(STORYBOARD.sprite)}#xywh=${x},${y},${tile.width},${tile.height}`
  })
  return `WEBVTT\n\n${cues.join('\n\n')}\n`
}

async function storyboard(o: SnapshotOptions): Promise<string[]> {
  const {duration, video} = o.probe
  const seconds = pictureSeconds(o.probe)
  const interval = storyboardInterval(seconds, STORYBOARD_MAX_TILES)
  const tiles = Math.max(1, Math.ceil(seconds / interval))
  const tile = {width: TILE_WIDTH, height: even((TILE_WIDTH * video.displayHeight) / video.displayWidth)}
  const columns = Math.min(STORYBOARD_COLUMNS, tiles)
  const rows = Math.ceil(tiles / STORYBOARD_COLUMNS)
  const layout = [...pictureFilters(video, `scale=${tile.width}:${tile.height},setsar=1`), `tile=${columns}x${rows}`]
  // fps duplicates frames over gaps, so tiles stay on their cues; it writes nothing for a clip
  // shorter than its first tick (a single frame): then the first frame and one per interval after it.
  const ways: Way[] = [
    {seek: 'none', at: 0, filters: [`fps=1/${interval}`, ...layout]},
    {seek: 'none', at: 0, filters: [`select='isnan(prev_selected_t)+gte(t,selected_n*${interval})'`, ...layout]},
  ]
  await writeAtomically(path.join(o.outDir, STORYBOARD.sprite), (temp) => grab(o, temp, 'the storyboard', ways, 5))
  await writeFileAtomically(path.join(o.outDir, STORYBOARD.vtt), storyboardVtt(tiles, interval, duration, tile))
  return [STORYBOARD.sprite, STORYBOARD.vtt]
}

export interface SnapshotsTaken {
  poster: string | null
  thumbnails: string[]
  storyboard: string[]
  /** What could not be made and why: NoFrameWritten (permanent) or an ffmpeg failure (worth a retry). */
  failures: Error[]
}

/**
 * Writes every snapshot it can under outDir; returns their paths relative to it and what
 * failed, so what was made is recorded even when a part was not.
 */
export async function takeSnapshots(o: SnapshotOptions): Promise<SnapshotsTaken> {
  await mkdir(o.outDir, {recursive: true})
  const taken: SnapshotsTaken = {poster: null, thumbnails: [], storyboard: [], failures: []}
  const attempt = async (part: () => Promise<void>) => {
    try {
      await part()
    } catch (error) {
      if (o.signal?.aborted || !(error instanceof Error)) throw error
      taken.failures.push(error)
    }
  }
  await attempt(async () => void (taken.poster = await poster(o)))
  await attempt(async () => {
    const {made, missing} = await thumbnails(o)
    taken.thumbnails = made
    taken.failures.push(...missing)
  })
  await attempt(async () => void (taken.storyboard = await storyboard(o)))
  return taken
}

/** The plain still sound without cover art shows in its renditions: the same in the player and the list. */
const GENERATED_POSTER = `color=c=${GENERATED_STILL.color}:size=${GENERATED_STILL.width}x${GENERATED_STILL.height}`

/**
 * The poster of sound: its cover art (as large as the poster of a video may be), else a plain
 * generated still. Returns the poster's path relative to outDir.
 */
export async function takeStillPoster(o: Omit<SnapshotOptions, 'probe' | 'thumbnailCount'> & {cover: {index: number} | null | undefined}): Promise<string> {
  await mkdir(o.outDir, {recursive: true})
  await writeAtomically(path.join(o.outDir, POSTER), async (temp) => {
    const command = o.cover
      ? ffmpeg({source: o.source, stdoutLines: 20}).outputOptions(['-map', `0:${o.cover.index}`, '-vf', `scale='min(${POSTER_MAX_WIDTH},iw)':-2`])
      : ffmpeg({source: GENERATED_POSTER, stdoutLines: 20}).inputOptions(['-f', 'lavfi'])
    command.outputOptions(['-frames:v', '1', '-q:v', '3', '-f', 'image2', '-update', '1']).output(temp)
    const run = await runFfmpeg(o.tools, command, {outputDuration: 0, timeoutMs: o.timeoutMs, ...(o.signal ? {signal: o.signal} : {})})
    if (!(await stat(temp).catch(() => null))?.size) throw new NoFrameWritten('the poster (cover art)', run.commandLine, run.stderr)
  })
  return POSTER
}
