/**
 * Private /media (MEDIA_SIGNING_SECRET set): every request needs `?token=` for its upload
 * (media/media-tokens.ts), or a valid cluster signature (a peer forwarding a client's request or
 * fetching a copy). The signature is checked here once, and the forwarding and media routes
 * after it reuse the verdict (cluster.isForwarded). Without the secret, /media is public.
 */
import type {Middleware} from 'koa'
import type {Cluster} from '../cluster/cluster.js'
import {SIGNATURE_HEADER} from '../cluster/cluster-signature.js'
import {Forbidden, Unauthorized} from '../errors.js'
import type {MediaTokens} from '../media/media-tokens.js'
import type {AppState} from './request-context-middleware.js'

const MEDIA = /^\/media\/([^/]+)\//

export function mediaAccess(tokens: MediaTokens | undefined, cluster: Cluster): Middleware<AppState> {
  return async (ctx, next) => {
    const match = MEDIA.exec(ctx.path)
    if (!tokens || !match) return next()
    const token = typeof ctx.query.token === 'string' ? ctx.query.token : undefined
    if (ctx.get(SIGNATURE_HEADER) && cluster.isForwarded(ctx)) {
      // A peer's request: the signature vouches for it; a client's token it carries still shapes playlists.
      if (token && (await tokens.verify(token, match[1]!)).ok) ctx.state.mediaToken = token
      return next()
    }
    const verdict = await tokens.verify(token, match[1]!)
    if (!verdict.ok) throw verdict.status === 403 ? new Forbidden(verdict.reason) : new Unauthorized(verdict.reason)
    ctx.state.mediaToken = token
    return next()
  }
}
