/**
 * Signed media URLs: `?token=<JWT>`, HS256 with MEDIA_SIGNING_SECRET, `sub` the upload id and
 * `exp` when the URL stops working. One token covers every file of its upload (the playlists
 * carry it on to variants, segments and the storyboard sprite: playlist-tokens.ts).
 */
import {jwtVerify, SignJWT} from 'jose'

export type MediaTokenVerdict = {ok: true} | {ok: false; status: 401 | 403; reason: string}

export class MediaTokens {
  private readonly key: Uint8Array
  constructor(
    secret: string,
    private readonly ttlMs: number
  ) {
    this.key = new TextEncoder().encode(secret)
  }

  async sign(uploadId: string, now = Date.now()): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({alg: 'HS256'})
      .setSubject(uploadId)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor((now + this.ttlMs) / 1000))
      .sign(this.key)
  }

  /** 401: no token, a bad or expired one; 403: a good token for another upload. */
  async verify(token: string | undefined, uploadId: string): Promise<MediaTokenVerdict> {
    if (!token) return {ok: false, status: 401, reason: 'this media is private: the URL needs ?token='}
    let sub: string | undefined
    try {
      ;({payload: {sub}} = await jwtVerify(token, this.key, {algorithms: ['HS256'], requiredClaims: ['exp', 'sub']}))
    } catch (error) {
      const expired = (error as {code?: string}).code === 'ERR_JWT_EXPIRED'
      return {ok: false, status: 401, reason: expired ? 'media token expired: ask the status API for a fresh URL' : 'media token is not valid'}
    }
    if (sub !== uploadId) return {ok: false, status: 403, reason: 'media token is for another upload'}
    return {ok: true}
  }
}

/** `url` with `token` added to its query (what the status API and the event feed hand out). */
export function withToken(url: string, token: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`
}
