/**
 * Any node, any request: a HEAD, PATCH or DELETE for an upload whose bytes live on another node
 * is streamed through to that node, which answers as if the client had come to it directly.
 * All writes to one upload so meet on its owner, whose lock serialises them: two PATCHes
 * arriving at two nodes at once cannot interleave. An owner that is down answers 503 with
 * Retry-After; nothing it holds is lost, and the client resumes once it is back.
 */
import type {Middleware} from 'koa'
import {ServiceUnavailable} from '../errors.js'
import type {AppState} from '../http/request-context-middleware.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import type {Cluster} from './cluster.js'
import {forwardRequest} from './peer-http.js'

const UPLOAD_PATH = /^\/files\/([^/]+)\/?$/

export function ownerForwarding(cluster: Cluster, uploads: UploadRepository): Middleware<AppState> {
  return async (ctx, next) => {
    const id = UPLOAD_PATH.exec(ctx.path)?.[1]
    // Creation (POST /files/) is local: the node that creates an upload owns it.
    if (!id || ctx.method === 'OPTIONS' || !cluster.enabled || cluster.isForwarded(ctx)) return next()
    const row = await uploads.identity(id)
    // Someone else's upload is answered locally (404), exactly like a missing one.
    if (!row || row.nodeId === cluster.self.id || row.owner !== ctx.state.context.subject) return next()
    const owner = await cluster.registry.find(row.nodeId)
    const unavailable = `the node holding upload ${id} (${row.nodeId}) is unavailable; retry shortly, nothing already received is lost`
    if (!owner?.live) throw new ServiceUnavailable(unavailable, {'Retry-After': '10'})
    ctx.state.context.log.debug({owner: owner.id}, 'forwarding to the upload owner')
    await forwardRequest(ctx, owner.url, cluster.forwardSigner(ctx.method, ctx.originalUrl, owner), unavailable)
  }
}
