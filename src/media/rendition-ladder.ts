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

export interface TranscodePlan {
  /** Highest first. */
  renditions: Rendition[]
  withAudio: boolean
  /**
   * Sound without a video stream: the picture is one image held over the sound, its cover art
   * (stream index) or, without one, a plain generated still.
   */
  still?: {streamIndex: number} | {generated: true}
}

/** The picture of sound without cover art (a neutral background, no text), also its poster. */
export const GENERATED_STILL = {color: '0x1f2937', width: 640, height: 360}

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
  if (!probe.video) {
    // One rendition of the still is enough (a still picture), with the sound at the top rung's rate.
    const picture = probe.cover ?? GENERATED_STILL
    const still: VideoStreamInfo = {codec: 'still', width: picture.width, height: picture.height, rotation: 0, displayWidth: picture.width, displayHeight: picture.height, frameRate: null, bitrate: null}
    const {renditions} = planRenditions({video: still, audio: probe.audio}, ladder)
    const smallest = renditions[renditions.length - 1]!
    return {renditions: [{...smallest, audioBitrate: rungs[0]!.audioBitrate}], withAudio: probe.audio !== null, still: probe.cover ? {streamIndex: probe.cover.index} : {generated: true}}
  }

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
  return {renditions, withAudio: probe.audio !== null}
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
