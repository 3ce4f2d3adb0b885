/**
 * What a node knows of its cluster: who it is, its peers (NodeRegistry), and how to sign and
 * check requests between nodes. One instance per node, passed to whatever talks to peers.
 */
import type {Context, ParameterizedContext} from 'koa'
import type {Logger} from 'pino'
import {Unauthorized} from '../errors.js'
import type {AppState} from '../http/request-context-middleware.js'
import {NonceWindow, newNonce, openBodySeal, sealBody, SIGNATURE_HEADER, signRequest, verifyRequest, type Verdict} from './cluster-signature.js'
import {expectSealedBody, type ForwardSigner} from './forwarded-body.js'
import type {ClusterNode, NodeRegistry} from './node-registry.js'
import {PEER_IDLE_TIMEOUT_MS, peerRequest} from './peer-http.js'

export class Cluster {
  /** Nonces of the signed requests this node accepted in the last window (each is accepted once). */
  private readonly nonces = new NonceWindow()

  constructor(
    readonly registry: NodeRegistry,
    private readonly secret: string | undefined,
    private readonly log: Logger,
    /** PEER_IDLE_TIMEOUT: every peerRequest of this node gives up a connection that moved nothing this long. */
    readonly peerIdleMs = PEER_IDLE_TIMEOUT_MS
  ) {}

  get self(): {id: string; url: string} {
    return this.registry.self
  }

  /** Without CLUSTER_SECRET a node stands alone: it neither forwards nor replicates. */
  get enabled(): boolean {
    return this.secret !== undefined
  }

  /** `headers` plus the signature over them, for a request to the peer `target`. */
  sign(method: string, path: string, target: ClusterNode, headers: Record<string, string> = {}): Record<string, string> {
    const signature = signRequest(this.requireSecret(), this.self.id, {id: target.id, incarnation: target.startedAt.getTime()}, {method, path, headers: lower(headers)})
    return {...headers, [SIGNATURE_HEADER]: signature}
  }

  /**
   * Signs one request forwarded to `target` (a client's, or a /media request), over the headers
   * as they are sent, and seals its body with the same nonce (forwarded-body.ts).
   */
  forwardSigner(method: string, path: string, target: ClusterNode): ForwardSigner {
    const secret = this.requireSecret()
    const nonce = newNonce()
    const to = {id: target.id, incarnation: target.startedAt.getTime()}
    return {
      sign: (headers) => ({[SIGNATURE_HEADER]: signRequest(secret, this.self.id, to, {method, path, headers}, Date.now(), nonce)}),
      seal: (sha256, end) => sealBody(secret, nonce, {sha256, end}),
    }
  }

  private requireSecret(): string {
    if (!this.secret) throw new Error('CLUSTER_SECRET is not set: this node cannot talk to peers')
    return this.secret
  }

  /** The peer that signed this request; refuses (401, and a log line) anything else, a replay included. */
  authenticate(ctx: Context): string {
    return this.signed(ctx).node
  }

  private signed(ctx: Context): {node: string; nonce: string} {
    const verdict = this.verify(ctx)
    if (!verdict.ok) {
      this.log.warn({method: ctx.method, path: ctx.path, from: ctx.ip, reason: verdict.reason}, 'refused an unauthenticated cluster request')
      throw new Unauthorized(`cluster request refused: ${verdict.reason}`)
    }
    return verdict
  }

  /** An upload's bytes from the node that holds them (a partial upload being concatenated here). */
  async openUploadContent(nodeId: string, uploadId: string): Promise<NodeJS.ReadableStream> {
    const node = await this.registry.find(nodeId)
    if (!node?.live) throw new Error(`node ${nodeId}, which holds upload ${uploadId}, is not live`)
    const path = `/internal/uploads/${encodeURIComponent(uploadId)}/content`
    const res = await peerRequest(new URL(path, node.url), {method: 'GET', headers: this.sign('GET', path, node), idleMs: this.peerIdleMs})
    if (res.statusCode !== 200) {
      res.resume()
      throw new Error(`node ${nodeId} answered ${res.statusCode} for the bytes of upload ${uploadId}`)
    }
    return res
  }

  /**
   * True when the request was forwarded by a peer (signed), so it must not be forwarded again.
   * A request that carries a signature that does not hold (tampered, replayed, for another node)
   * is refused, not served as a client's. A forwarded body is taken only with its seal: the
   * request context says what it must hash to (forwarded-body.ts).
   */
  isForwarded(ctx: ParameterizedContext<AppState>): boolean {
    if (!this.secret || !ctx.get(SIGNATURE_HEADER)) return false
    // Checked once per request: a second check would see its own nonce as a replay.
    if (ctx.state.context.fromPeer) return true
    const {nonce} = this.signed(ctx)
    const secret = this.secret
    const check = expectSealedBody(ctx.req, (value) => openBodySeal(secret, nonce, value))
    if (check) ctx.state.context.forwardedBody = check
    ctx.state.context.fromPeer = true
    return true
  }

  private verify(ctx: Context): Verdict {
    if (!this.secret) return {ok: false, reason: 'this node has no CLUSTER_SECRET'}
    const incarnation = this.registry.incarnation
    if (incarnation === undefined) return {ok: false, reason: 'this node has not joined the cluster yet'}
    const request = {method: ctx.method, path: ctx.originalUrl, headers: lower(ctx.headers as Record<string, string>)}
    return verifyRequest(this.secret, ctx.get(SIGNATURE_HEADER) || undefined, request, {id: this.self.id, incarnation}, this.nonces)
  }
}

function lower(headers: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  return out
}
