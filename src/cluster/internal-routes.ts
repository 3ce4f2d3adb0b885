/**
 * Endpoints only peers may call, each request signed with CLUSTER_SECRET (see Cluster):
 * - HEAD /internal/replicas/<upload>/<path>: what this node holds of an artifact (verified
 *   copy, or how many bytes of an interrupted one);
 * - PUT  /internal/replicas/<upload>/<path>: receive an artifact from Upload-Offset on, verify
 *   its sha256 once complete, then make it visible and record the replica;
 * - GET  /internal/uploads/<id>/content: an upload's bytes (a partial upload being concatenated
 *   on another node).
 */
import {createHash} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, rename, stat, unlink} from 'node:fs/promises'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import {Transform} from 'node:stream'
import type {Middleware} from 'koa'
import {BadRequest, Conflict, NotFound} from '../errors.js'
import type {AppState} from '../http/request-context.js'
import {uploadMediaDir} from '../media/artifact-files.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import type {UploadStore} from '../uploads/upload-store.js'
import type {Cluster} from './cluster.js'
import type {ReplicaRepository} from './replica-repository.js'
import {REPLICA_PREFIX} from './replication.js'

const CONTENT = /^\/internal\/uploads\/([A-Za-z0-9_-]{1,128})\/content$/

/** Decoded path segments; nothing that could leave the upload's media directory. */
function safeSegments(raw: string): string[] {
  return raw.split('/').map((segment) => {
    let decoded: string
    try {
      decoded = decodeURIComponent(segment)
    } catch {
      throw new BadRequest('malformed percent-encoding in the path')
    }
    if (decoded === '' || decoded.startsWith('.') || /[\0/\\]/.test(decoded)) throw new BadRequest('invalid artifact path')
    return decoded
  })
}

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
    const [uploadId, ...rest] = safeSegments(ctx.path.slice(REPLICA_PREFIX.length))
    if (!uploadId || rest.length === 0) throw new NotFound('no such artifact')
    const artifact = await deps.replicas.findArtifact(uploadId, rest.join('/'))
    if (!artifact) throw new NotFound('no such artifact')
    const dir = path.join(uploadMediaDir(deps.dataDir, uploadId), ...rest.slice(0, -1))
    const target = path.join(dir, rest[rest.length - 1]!)
    const partial = path.join(dir, `.replica-${rest[rest.length - 1]!}.part`)
    const partialSize = async () => (await stat(partial).catch(() => undefined))?.size ?? 0

    if (ctx.method === 'HEAD') {
      const holders = await deps.replicas.holders(artifact)
      if (holders.includes(deps.cluster.self.id) && (await stat(target).catch(() => undefined))?.size === artifact.size) {
        ctx.set('X-Replica-Sha256', artifact.sha256)
      }
      ctx.set('Upload-Offset', String(await partialSize()))
      ctx.body = null
      ctx.status = 200
      return
    }
    if (ctx.method !== 'PUT') throw new NotFound('no such internal endpoint')

    const sha256 = ctx.get('x-artifact-sha256')
    const size = nonNegativeInt(ctx.get('x-artifact-size'), 'X-Artifact-Size')
    const offset = nonNegativeInt(ctx.get('upload-offset'), 'Upload-Offset')
    if (sha256 !== artifact.sha256 || size !== artifact.size) throw new Conflict('this artifact has changed since the copy started; start again')
    await mkdir(dir, {recursive: true})
    const have = await partialSize()
    if (offset !== have) {
      ctx.set('Upload-Offset', String(have))
      throw new Conflict(`this node holds ${have} bytes of the copy, not ${offset}`)
    }
    // One pass in the usual case: the digest grows as the bytes arrive; a resumed copy first
    // re-reads what it already had.
    const hash = createHash('sha256')
    if (have > 0) for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer)
    let received = have
    const digest = new Transform({
      transform(chunk: Buffer, _enc, done) {
        if (received + chunk.length > size) return done(new BadRequest('the copy is longer than the artifact'))
        received += chunk.length
        hash.update(chunk)
        done(null, chunk)
      },
    })
    await pipeline(ctx.req, digest, createWriteStream(partial, {flags: have > 0 ? 'r+' : 'w', start: have}))
    if (received < size) {
      ctx.set('Upload-Offset', String(received))
      ctx.body = null
      ctx.status = 204
      return
    }
    if (hash.digest('hex') !== artifact.sha256) {
      await unlink(partial).catch(() => {})
      throw new BadRequest('the copy does not match the artifact sha256; it was discarded')
    }
    await rename(partial, target)
    await deps.replicas.record(artifact, deps.cluster.self.id)
    ctx.state.context.log.info({from: peer, uploadId, path: artifact.path, size}, 'replica received')
    ctx.body = null
    ctx.status = 201
  }
}
