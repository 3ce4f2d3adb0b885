/**
 * Serving from anywhere: a /media request for an artifact this node has no copy of is streamed
 * from a live node that has one (Range, ETag and the rest pass through both ways).
 */
import {stat} from 'node:fs/promises'
import path from 'node:path'
import type {Middleware} from 'koa'
import {ServiceUnavailable} from '../errors.js'
import type {AppState} from '../http/request-context-middleware.js'
import {decodedArtifactSegments, uploadMediaDir} from '../media/artifact-files.js'
import type {Cluster} from './cluster.js'
import {forwardRequest} from './peer-http.js'
import type {ReplicaRepository} from './replica-repository.js'

const MEDIA = /^\/media\/([A-Za-z0-9_-]{1,128})\/(.+)$/

export function mediaForwarding(cluster: Cluster, replicas: ReplicaRepository, dataDir: string): Middleware<AppState> {
  return async (ctx, next) => {
    const match = MEDIA.exec(ctx.path)
    if (!match || !cluster.enabled || (ctx.method !== 'GET' && ctx.method !== 'HEAD') || cluster.isForwarded(ctx)) return next()
    const [, uploadId, relative] = match as unknown as [string, string, string]
    let segments: string[]
    try {
      segments = decodedArtifactSegments(relative)
    } catch {
      return next() // the media route answers malformed paths
    }
    const artifact = await replicas.artifacts.find(uploadId, segments.join('/'))
    if (!artifact) return next()
    const local = await stat(path.join(uploadMediaDir(dataDir, uploadId), ...segments)).catch(() => undefined)
    if (local?.size === artifact.size) return next()

    const holders = await replicas.holders(artifact)
    const source = (await cluster.registry.livePeers()).find((n) => holders.includes(n.id))
    if (!source) throw new ServiceUnavailable('no live node holds this file right now; retry shortly', {'Retry-After': '10'})
    await forwardRequest(ctx, source.url, cluster.forwardSigner(ctx.method, ctx.originalUrl, source), 'the node holding this file is unavailable; retry shortly')
  }
}
