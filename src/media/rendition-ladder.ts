/**
 * What to produce, computed apart from running ffmpeg (pure, unit-tested): the renditions a
 * source gets from the configured ladder, and when to take thumbnails.
 *
 * A rung's `height` is the short side of the picture as shown, so a portrait phone video gets
 * 1080x1920 for "1080p" like a landscape one gets 1920x1080. Never upscaled; aspect ratio and
 * rotation kept (dimensions come from the displayed, rotated picture); sizes even, as 4:2:0
 * H.264 needs.
 */
import type {RenditionConfig} from '../config/index.js'
import type {MediaProbe, VideoStreamInfo} from './probe.js'

export interface Rendition {
  name: string
  width: number
  height: number
  videoBitrate: string
  audioBitrate: string
}

export type TranscodePlan =
  | {
      kind: 'video'
      /** Highest first. */
      renditions: Rendition[]
      withAudio: boolean
      /** Sound with cover art: the picture is that one image (stream index), held over the sound. */
      still?: {streamIndex: number}
    }
  | {kind: 'audio'; audioBitrate: string}

/** Rounds down to an even number of at least 2: never above the source, always encodable. */
export function even(size: number): number {
  return Math.max(2, Math.floor(size / 2) * 2)
}

/** The even number nearest `size`, at least 2. */
export function nearestEven(size: number): number {
  return Math.max(2, Math.round(size / 2) * 2)
}

export function planRenditions(probe: Pick<MediaProbe, 'video' | 'audio' | 'cover'>, ladder: readonly RenditionConfig[]): TranscodePlan {
  const rungs = [...ladder].sort((a, b) => b.height - a.height)
  const lowest = rungs[rungs.length - 1]!
  if (!probe.video && probe.cover) {
    // One rendition of the cover is enough (a still picture), with the sound at the top rung's rate.
    const cover: VideoStreamInfo = {codec: 'cover', width: probe.cover.width, height: probe.cover.height, rotation: 0, displayWidth: probe.cover.width, displayHeight: probe.cover.height, frameRate: null, bitrate: null}
    const plan = planRenditions({video: cover, audio: probe.audio}, ladder) as Extract<TranscodePlan, {kind: 'video'}>
    const lowest = plan.renditions[plan.renditions.length - 1]!
    return {kind: 'video', renditions: [{...lowest, audioBitrate: rungs[0]!.audioBitrate}], withAudio: probe.audio !== null, still: {streamIndex: probe.cover.index}}
  }
  if (!probe.video) return {kind: 'audio', audioBitrate: rungs[0]!.audioBitrate}

  const {displayWidth: w, displayHeight: h} = probe.video
  const shortSide = Math.min(w, h)
  const landscape = w >= h
  const sized = (rung: RenditionConfig, short: number): Rendition => {
    // The long side follows the aspect ratio; the source's own size is copied, not recomputed.
    // Rounded to the nearest even size (853.3 -> 854, not 852), never past the source's.
    const long = short >= shortSide ? even(Math.max(w, h)) : Math.min(even(Math.max(w, h)), nearestEven((short * Math.max(w, h)) / shortSide))
    return {
      name: rung.name,
      width: landscape ? long : even(short),
      height: landscape ? even(short) : long,
      videoBitrate: rung.videoBitrate,
      audioBitrate: rung.audioBitrate,
    }
  }

  const fitting = rungs.filter((rung) => rung.height <= shortSide).map((rung) => sized(rung, rung.height))
  // A source smaller than every rung still plays: one rendition at its own (even) size.
  const renditions = fitting.length > 0 ? fitting : [sized({...lowest, name: `${even(shortSide)}p`}, shortSide)]
  return {kind: 'video', renditions, withAudio: probe.audio !== null}
}

/**
 * `count` times evenly spread over the clip, each in the middle of its slice (never the very
 * first frame, often black; never past the end). Fewer for a clip with fewer frames than that.
 */
export function thumbnailTimes(duration: number, count: number, frameRate: number | null): number[] {
  if (!(duration > 0) || count <= 0) return []
  const frames = Math.max(1, Math.floor(duration * (frameRate ?? 25)))
  const n = Math.min(count, frames)
  return Array.from({length: n}, (_, i) => Math.round(((i + 0.5) * duration * 1000) / n) / 1000)
}

/** Storyboard: one tile per `interval` seconds, at most `maxTiles`, interval at least 1 s. */
export function storyboardInterval(duration: number, maxTiles: number): number {
  if (!(duration > 0)) return 1
  return Math.max(1, Math.ceil(duration / maxTiles))
}
