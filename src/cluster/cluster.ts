/**
 * What a node knows of its cluster: who it is, its peers (NodeRegistry), and how to sign and
 * check requests between nodes. One instance per node, passed to whatever talks to peers.
 */
import type {Context} from 'koa'
import type {Logger} from 'pino'
import {Unauthorized} from '../errors.js'
import {SIGNATURE_HEADER, signRequest, verifyRequest} from './cluster-signature.js'
import type {NodeRegistry} from './node-registry.js'
import {peerRequest} from './peer-http.js'

export class Cluster {
  constructor(
    readonly registry: NodeRegistry,
    private readonly secret: string | undefined,
    private readonly log: Logger
  ) {}

  get self(): {id: string; url: string} {
    return this.registry.self
  }

  /** Without CLUSTER_SECRET a node stands alone: it neither forwards nor replicates. */
  get enabled(): boolean {
    return this.secret !== undefined
  }

  /** `headers` plus the signature over them, for a request to a peer. */
  sign(method: string, path: string, headers: Record<string, string> = {}): Record<string, string> {
    return {...headers, ...this.signature(method, path, headers)}
  }

  /** Only the signature header, over headers the request already carries (when forwarding one). */
  signature(method: string, path: string, present: Record<string, string | string[] | undefined>): Record<string, string> {
    if (!this.secret) throw new Error('CLUSTER_SECRET is not set: this node cannot talk to peers')
    return {[SIGNATURE_HEADER]: signRequest(this.secret, this.self.id, {method, path, headers: lower(present)})}
  }

  /** The peer that signed this request; refuses (401, and a log line) anything else. */
  authenticate(ctx: Context): string {
    const verdict = this.secret
      ? verifyRequest(this.secret, ctx.get(SIGNATURE_HEADER) || undefined, {method: ctx.method, path: ctx.originalUrl, headers: lower(ctx.headers as Record<string, string>)})
      : ({ok: false, reason: 'this node has no CLUSTER_SECRET'} as const)
    if (!verdict.ok) {
      this.log.warn({method: ctx.method, path: ctx.path, from: ctx.ip, reason: verdict.reason}, 'refused an unauthenticated cluster request')
      throw new Unauthorized(`cluster request refused: ${verdict.reason}`)
    }
    return verdict.node
  }

  /** An upload's bytes from the node that holds them (a partial upload being concatenated here). */
  async openUploadContent(nodeId: string, uploadId: string): Promise<NodeJS.ReadableStream> {
    const node = await this.registry.find(nodeId)
    if (!node?.live) throw new Error(`node ${nodeId}, which holds upload ${uploadId}, is not live`)
    const path = `/internal/uploads/${encodeURIComponent(uploadId)}/content`
    const res = await peerRequest(new URL(path, node.url), {method: 'GET', headers: this.sign('GET', path)})
    if (res.statusCode !== 200) {
      res.resume()
      throw new Error(`node ${nodeId} answered ${res.statusCode} for the bytes of upload ${uploadId}`)
    }
    return res
  }

  /** True when the request was forwarded by a peer (signed), so it must not be forwarded again. */
  isForwarded(ctx: Context): boolean {
    if (!this.secret || !ctx.get(SIGNATURE_HEADER)) return false
    return verifyRequest(this.secret, ctx.get(SIGNATURE_HEADER), {method: ctx.method, path: ctx.originalUrl, headers: lower(ctx.headers as Record<string, string>)}).ok
  }
}

function lower(headers: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  return out
}
