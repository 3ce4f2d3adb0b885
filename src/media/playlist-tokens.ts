/**
 * Private media: a playlist (HLS master or variant, the storyboard WebVTT) is served with each
 * URI it names carrying the request's token, so players (hls.js, Safari, ffmpeg) that resolve
 * relative URIs against the playlist fetch variants, segments and the sprite signed as well.
 */

export const isPlaylist = (relative: string): boolean => relative.endsWith('.m3u8') || relative.endsWith('.vtt')

const addToken = (uri: string, token: string) => {
  const hash = uri.indexOf('#')
  const [base, fragment] = hash < 0 ? [uri, ''] : [uri.slice(0, hash), uri.slice(hash)]
  return `${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}${fragment}`
}

/** HLS: every URI line, and every URI="..." attribute of a tag (EXT-X-MEDIA, EXT-X-MAP, keys). */
export function signM3u8(text: string, token: string): string {
  return text
    .split('\n')
    .map((line) => {
      const trimmed = line.trim()
      if (trimmed === '') return line
      if (trimmed.startsWith('#')) return line.replace(/URI="([^"]*)"/g, (_, uri: string) => `URI="${addToken(uri, token)}"`)
      return addToken(trimmed, token)
    })
    .join('\n')
}

/** WebVTT storyboard: each cue's payload line names the sprite (`sprite.jpg#xywh=...`). */
export function signStoryboardVtt(text: string, token: string): string {
  return text.replace(/^(?!WEBVTT)([^\s#][^\s]*\.(?:jpe?g|png|webp))(#xywh=[0-9,]+)?$/gm, (_, uri: string, fragment = '') => addToken(uri, token) + fragment)
}

export function signPlaylist(relative: string, body: Buffer, token: string): Buffer {
  const text = body.toString('utf8')
  return Buffer.from(relative.endsWith('.vtt') ? signStoryboardVtt(text, token) : signM3u8(text, token))
}
