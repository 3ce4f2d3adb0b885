/**
 * Endpoints only peers may call, each request signed with CLUSTER_SECRET (see Cluster):
 * - HEAD /internal/replicas/<upload>/<path>: what this node holds of an artifact (verified
 *   copy, or how many bytes of an interrupted one);
 * - PUT  /internal/replicas/<upload>/<path>: receive an artifact from Upload-Offset on, verify
 *   the wire hash of its row (X-Artifact-Xxh128 must match it; sha256 for rows without one) as
 *   it streams, then make it visible and record the replica; with X-Replica-Chain, forward it
 *   to those peers while it arrives, and answer what became of each (replica-chain.ts);
 * - POST /internal/replicas/<upload>: receive a bundle (tar) of the upload's small artifacts,
 *   each verified and recorded the same way; answers which were stored and which were not;
 * - GET  /internal/uploads/<id>/content: an upload's bytes (a partial upload being concatenated
 *   on another node).
 */
import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import type {Middleware} from 'koa'
import {BadRequest, NotFound} from '../errors.js'
import type {AppState} from '../http/request-context-middleware.js'
import {decodedArtifactSegments} from '../media/artifact-files.js'
import {isUploadId, type UploadRepository} from '../uploads/upload-repository.js'
import type {UploadStore} from '../uploads/upload-store.js'
import type {Cluster} from './cluster.js'
import {ChainForwarder, CHAIN_HEADER, parseChain} from './replica-chain.js'
import {ReplicaReceiver} from './replica-receiver.js'
import type {ReplicaRepository} from './replica-repository.js'
import {REPLICA_PREFIX} from './replica-paths.js'

const CONTENT = /^\/internal\/uploads\/([A-Za-z0-9_-]{1,128})\/content$/

const nonNegativeInt = (value: string, name: string) => {
  if (!/^\d{1,15}$/.test(value)) throw new BadRequest(`${name} must be a non-negative integer`)
  return Number(value)
}

export interface InternalDeps {
  cluster: Cluster
  replicas: ReplicaRepository
  uploads: UploadRepository
  store: UploadStore
  dataDir: string
}

export function internalRoutes(deps: InternalDeps): Middleware<AppState> {
  const receiver = new ReplicaReceiver(deps.replicas, deps.dataDir, deps.cluster.self.id, new ChainForwarder(deps))
  return async (ctx, next) => {
    if (!ctx.path.startsWith('/internal/')) return next()
    const peer = deps.cluster.authenticate(ctx)
    ctx.set('Cache-Control', 'no-store')

    const content = CONTENT.exec(ctx.path)
    if (content && ctx.method === 'GET') {
      const row = await deps.uploads.findById(content[1]!)
      if (!row || row.nodeId !== deps.cluster.self.id) throw new NotFound('no such upload on this node')
      const file = deps.store.filePath(row.id)
      const {size} = await stat(file).catch(() => {
        throw new NotFound('the upload has no bytes on this node')
      })
      ctx.length = size
      ctx.type = 'application/octet-stream'
      ctx.body = createReadStream(file, {highWaterMark: 1 << 20})
      return
    }

    if (!ctx.path.startsWith(REPLICA_PREFIX)) throw new NotFound('no such internal endpoint')
    const [uploadId, ...rest] = decodedArtifactSegments(ctx.path.slice(REPLICA_PREFIX.length))
    if (!isUploadId(uploadId!)) throw new NotFound('no such upload')
    const log = ctx.state.context.log

    if (rest.length === 0) {
      if (ctx.method !== 'POST') throw new NotFound('no such internal endpoint')
      const result = await receiver.receiveBundle(uploadId!, ctx.req, parseChain(ctx.get(CHAIN_HEADER)))
      log.info(
        {from: peer, uploadId, stored: result.stored.length, rejected: result.rejected.length, chain: result.chain?.map((l) => ('stored' in l ? {node: l.node, stored: l.stored.length} : l))},
        'replica bundle received'
      )
      ctx.body = result
      return
    }

    const artifact = await receiver.artifact(uploadId!, rest.join('/'))
    if (ctx.method === 'HEAD') {
      const state = await receiver.state(artifact)
      if (state.verifiedSha256) ctx.set('X-Replica-Sha256', state.verifiedSha256)
      ctx.set('Upload-Offset', String(state.offset))
      ctx.body = null
      ctx.status = 200
      return
    }
    if (ctx.method !== 'PUT') throw new NotFound('no such internal endpoint')
    const claimed = {
      sha256: ctx.get('x-artifact-sha256'),
      xxh128: ctx.get('x-artifact-xxh128') || undefined,
      size: nonNegativeInt(ctx.get('x-artifact-size'), 'X-Artifact-Size'),
      offset: nonNegativeInt(ctx.get('upload-offset'), 'Upload-Offset'),
    }
    const chain = parseChain(ctx.get(CHAIN_HEADER))
    const result = await receiver.receive(artifact, claimed, ctx.req, chain)
    if (!result.complete) {
      ctx.set('Upload-Offset', String(result.offset))
      ctx.body = null
      ctx.status = 204
      return
    }
    log.info({from: peer, uploadId, path: artifact.path, size: artifact.size, chain: result.chain}, 'replica received')
    // Body first: koa turns a null body into a 204.
    ctx.body = chain.length > 0 ? {chain: result.chain} : null
    ctx.status = 201
  }
}
