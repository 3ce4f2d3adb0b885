/**
 * What every picture we make from a source goes through, renditions and snapshots alike, so they
 * all look the same: interlaced video deinterlaced; HDR (PQ, HLG) tone-mapped to SDR BT.709, since our H.264 renditions and
 * JPEGs are 8-bit SDR and players show untouched HLG samples washed out.
 */
import type {MediaProbe, VideoStreamInfo} from './probe.js'

/** Transfer characteristics of high dynamic range video: PQ (HDR10, Dolby Vision) and HLG (phones, broadcast). */
const HDR_TRANSFERS = new Set(['smpte2084', 'arib-std-b67'])

export function isHdr(video: Pick<VideoStreamInfo, 'color'>): boolean {
  return HDR_TRANSFERS.has(video.color?.transfer ?? '')
}

/**
 * zscale to linear light (the input's own tags, given explicitly: not every demuxer passes them
 * on to frames), Hable's curve in float RGB, then BT.709 8-bit. zscale and tonemap are in
 * Debian's ffmpeg and in the static fallback build.
 */
function toneMapFilters(video: Pick<VideoStreamInfo, 'color'>): string[] {
  const input = `tin=${video.color!.transfer}:min=${video.color?.matrix ?? 'bt2020nc'}:pin=${video.color?.primaries ?? 'bt2020'}:rin=tv`
  return [`zscale=${input}:t=linear:npl=100`, 'format=gbrpf32le', 'zscale=p=bt709', 'tonemap=tonemap=hable:desat=0', 'zscale=t=bt709:m=bt709:r=tv', 'format=yuv420p']
}

/**
 * The filters from a decoded source frame to a picture of the size `scale` gives: deinterlacing
 * first (bwdif, one frame per frame: scaling woven fields smears the combing into the picture),
 * tone mapping after the scale (fewer pixels).
 */
export function pictureFilters(video: Pick<VideoStreamInfo, 'color' | 'interlaced'>, scale: string): string[] {
  return [...(video.interlaced ? ['bwdif=mode=send_frame:parity=auto:deint=all'] : []), scale, ...(isHdr(video) ? toneMapFilters(video) : [])]
}

/** Encoder options that tag tone-mapped output as what it now is. */
export function colorTags(video: Pick<VideoStreamInfo, 'color'>): string[] {
  return isHdr(video) ? ['-color_primaries', 'bt709', '-color_trc', 'bt709', '-colorspace', 'bt709'] : []
}

/** Seconds of picture: a still beside minutes of audio has one frame, not minutes of them. */
export function pictureSeconds(probe: Pick<MediaProbe, 'duration'> & {video: Pick<VideoStreamInfo, 'duration'>}): number {
  const stream = probe.video.duration
  return stream && stream < probe.duration ? stream : probe.duration
}

/** Less than this between the picture's end and the sound's is left alone (encoders' rounding). */
const STILL_SLACK_SECONDS = 0.5

/**
 * A picture that stops well before the sound (a podcast's still image, a single frame beside
 * audio) is held, its last frame cloned until the end: HLS segments are cut on video, and a
 * 0.04 s video track gives players a 0.04 s playlist.
 */
export function holdLastFrame(probe: Pick<MediaProbe, 'duration'> & {video: Pick<VideoStreamInfo, 'duration'>}): string[] {
  const missing = probe.duration - pictureSeconds(probe)
  return missing > STILL_SLACK_SECONDS ? [`tpad=stop_mode=clone:stop_duration=${Math.ceil(missing * 1000) / 1000}`] : []
}
