/**
 * Still pictures of a video: a poster from a representative frame (never a black one when any
 * other exists), thumbnails at evenly spaced times, and a storyboard sprite with a WebVTT file
 * (`#xywh=`) that players use for scrubbing previews.
 */
import {mkdir} from 'node:fs/promises'
import path from 'node:path'
import ffmpeg from 'fluent-ffmpeg'
import {writeAtomically, writeFileAtomically} from './artifact-files.js'
import {FfmpegFailed} from './errors.js'
import {runFfmpeg} from './ffmpeg-run.js'
import type {MediaTools} from './media-tools.js'
import type {MediaProbe, VideoStreamInfo} from './probe.js'
import {even, storyboardInterval, thumbnailTimes} from './rendition-ladder.js'

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

const run = (o: SnapshotOptions, command: ffmpeg.FfmpegCommand, seconds: number) =>
  runFfmpeg(o.tools, command, {outputDuration: seconds, timeoutMs: o.timeoutMs, ...(o.signal ? {signal: o.signal} : {})})

/** A window after the opening (often black or a title), then the frame most like its neighbours, skipping dark ones. */
async function poster(o: SnapshotOptions): Promise<string> {
  const duration = o.probe.duration
  const start = duration > 4 ? Math.min(duration * 0.1, 30) : 0
  const window = Math.min(POSTER_WINDOW_SECONDS, duration - start)
  const pick = async (skipDark: boolean) =>
    writeAtomically(path.join(o.outDir, POSTER), async (temp) => {
      const filters = [
        `scale='min(${POSTER_MAX_WIDTH},iw)':-2`,
        ...(skipDark ? ['signalstats', `metadata=select:key=lavfi.signalstats.YAVG:value=${BLACK_LUMA}:function=greater`] : []),
        'thumbnail=60',
      ]
      const command = ffmpeg({source: o.source, stdoutLines: 20})
        .inputOptions(['-ss', String(start), '-t', String(window)])
        .outputOptions(['-vf', filters.join(','), '-frames:v', '1', '-q:v', '3', '-f', 'image2', '-update', '1'])
        .output(temp)
      await run(o, command, window)
    })
  try {
    await pick(true)
  } catch (error) {
    // Every frame in the window was dark (a night scene): the most representative dark frame it is.
    if (!(error instanceof FfmpegFailed) || o.signal?.aborted) throw error
    await pick(false)
  }
  return POSTER
}

async function thumbnails(o: SnapshotOptions): Promise<string[]> {
  const times = thumbnailTimes(o.probe.duration, o.thumbnailCount, o.probe.video.frameRate)
  const names = times.map((_, i) => `thumb_${String(i + 1).padStart(2, '0')}.jpg`)
  if (times.length === 0) return []
  await writeAtomically(path.join(o.outDir, 'thumbs'), async (temp) => {
    await mkdir(temp, {recursive: true})
    for (const [i, time] of times.entries()) {
      // Input seeking (-ss before -i) jumps to the nearest keyframe and decodes on: fast and exact.
      const command = ffmpeg({source: o.source, stdoutLines: 20})
        .inputOptions(['-ss', String(time)])
        .outputOptions(['-vf', `scale=${THUMB_WIDTH}:-2`, '-frames:v', '1', '-q:v', '4', '-f', 'image2', '-update', '1'])
        .output(path.join(temp, names[i]!))
      await run(o, command, 0)
    }
  })
  return names.map((name) => `thumbs/${name}`)
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
    const end = Math.min((i + 1) * interval, duration)
    return `${stamp(i * interval)} --> ${stamp(end)}\n${path.basename(STORYBOARD.sprite)}#xywh=${x},${y},${tile.width},${tile.height}`
  })
  return `WEBVTT\n\n${cues.join('\n\n')}\n`
}

async function storyboard(o: SnapshotOptions): Promise<string[]> {
  const {duration, video} = o.probe
  const interval = storyboardInterval(duration, STORYBOARD_MAX_TILES)
  const tiles = Math.max(1, Math.ceil(duration / interval))
  const tile = {width: TILE_WIDTH, height: even((TILE_WIDTH * video.displayHeight) / video.displayWidth)}
  const columns = Math.min(STORYBOARD_COLUMNS, tiles)
  const rows = Math.ceil(tiles / STORYBOARD_COLUMNS)
  await writeAtomically(path.join(o.outDir, STORYBOARD.sprite), async (temp) => {
    const command = ffmpeg({source: o.source, stdoutLines: 20})
      .outputOptions([
        '-vf', `fps=1/${interval},scale=${tile.width}:${tile.height},tile=${columns}x${rows}`,
        '-frames:v', '1', '-q:v', '5', '-f', 'image2', '-update', '1',
      ])
      .output(temp)
    await run(o, command, duration)
  })
  await writeFileAtomically(path.join(o.outDir, STORYBOARD.vtt), storyboardVtt(tiles, interval, duration, tile))
  return [STORYBOARD.sprite, STORYBOARD.vtt]
}

/** Writes every snapshot under outDir; returns their paths relative to it. */
export async function takeSnapshots(o: SnapshotOptions): Promise<{poster: string; thumbnails: string[]; storyboard: string[]}> {
  await mkdir(o.outDir, {recursive: true})
  return {poster: await poster(o), thumbnails: await thumbnails(o), storyboard: await storyboard(o)}
}
