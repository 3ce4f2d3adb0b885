/**
 * Requests between nodes carry
 * `X-Cluster-Signature: v2 node=<sender>,to=<target>.<incarnation>,t=<unix seconds>,n=<nonce>,sig=<hex>`,
 * an HMAC-SHA256 with CLUSTER_SECRET over the method, the path with its query, the time, the
 * sender, the target node and its incarnation (when it started), a random nonce, and the
 * headers that say who asks and what the body is: `Authorization` (a forwarded client's token:
 * the caller identity), `Content-Digest`, `Content-Length`, the artifact's digests and size, the
 * peers a replica is forwarded to, and the tus headers that shape a write.
 *
 * A request is accepted once: older or newer than five minutes, for another node or another
 * life of this one, with a nonce this node has already seen, or tampered: refused. Because the
 * signature names its target and the target's incarnation, a per-process memory of the nonces
 * seen in the window is enough (NonceWindow): a replay to another node fails the target check,
 * and a replay after a restart fails the incarnation check; no shared table is needed.
 */
import {createHmac, randomBytes, timingSafeEqual} from 'node:crypto'

export const SIGNATURE_HEADER = 'x-cluster-signature'
/** Headers whose values the signature covers, besides method, path, time, nodes and nonce. */
export const SIGNED_HEADERS = [
  'authorization',
  'content-digest',
  'content-length',
  'x-artifact-sha256',
  'x-artifact-xxh128',
  'x-artifact-size',
  'upload-offset',
  'upload-length',
  'upload-checksum',
  'upload-concat',
  'x-replica-chain',
  'x-cluster-content-length',
] as const
export const MAX_SKEW_SECONDS = 300

export interface SignedRequest {
  method: string
  /** Path and query, as sent. */
  path: string
  headers: Record<string, string | undefined>
}

/** The node a request is for: its id and the time its current life started (ms). */
export interface SignatureTarget {
  id: string
  incarnation: number
}

interface Fields {
  node: string
  to: string
  time: number
  nonce: string
}

function canonical(request: SignedRequest, fields: Fields): string {
  const signed = SIGNED_HEADERS.map((h) => `${h}:${request.headers[h] ?? ''}`)
  return ['v2', request.method.toUpperCase(), request.path, String(fields.time), fields.node, fields.to, fields.nonce, ...signed].join('\n')
}

export const newNonce = (): string => randomBytes(16).toString('hex')
const hmac = (secret: string, text: string) => createHmac('sha256', secret).update(text).digest()
const targetName = (target: SignatureTarget) => `${target.id}.${target.incarnation}`

export function signRequest(secret: string, node: string, target: SignatureTarget, request: SignedRequest, now = Date.now(), nonce = newNonce()): string {
  const fields = {node, to: targetName(target), time: Math.floor(now / 1000), nonce}
  return `v2 node=${node},to=${fields.to},t=${fields.time},n=${nonce},sig=${hmac(secret, canonical(request, fields)).toString('hex')}`
}

export type Verdict = {ok: true; node: string; nonce: string} | {ok: false; reason: string}

/**
 * Checks a signature for this node (`self`); `nonces` remembers the ones accepted, so each is
 * accepted once. Without `nonces`, nothing is remembered (only for tests of the format).
 */
export function verifyRequest(secret: string, header: string | undefined, request: SignedRequest, self: SignatureTarget, nonces?: NonceWindow, now = Date.now()): Verdict {
  if (!header) return {ok: false, reason: 'no cluster signature'}
  const match = /^v2 node=([^,\s]{1,128}),to=([^,\s]{1,160}),t=(\d{1,12}),n=([0-9a-f]{32}),sig=([0-9a-f]{64})$/.exec(header.trim())
  if (!match) return {ok: false, reason: 'malformed cluster signature'}
  const [, node, to, time, nonce, signature] = match as unknown as [string, string, string, string, string, string]
  const seconds = Number(time)
  if (Math.abs(Math.floor(now / 1000) - seconds) > MAX_SKEW_SECONDS) return {ok: false, reason: 'cluster signature expired'}
  const expected = hmac(secret, canonical(request, {node, to, time: seconds, nonce}))
  const given = Buffer.from(signature, 'hex')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return {ok: false, reason: 'cluster signature does not match'}
  if (to !== targetName(self)) return {ok: false, reason: to.startsWith(`${self.id}.`) ? 'cluster signature is for an earlier life of this node' : 'cluster signature is for another node'}
  if (nonces && !nonces.claim(nonce, seconds, now)) return {ok: false, reason: 'cluster signature replayed (nonce already seen)'}
  return {ok: true, node, nonce}
}

/**
 * A body forwarded from a client streams after the signed head, so its digest cannot be in the
 * head: the forwarder hashes it while it sends and seals it in the trailer
 * `X-Cluster-Content-Digest: sha-256=:<base64>:, end=<complete|cut>, sig=<hex>`, an HMAC over the
 * digest, how the client's body ended, and the nonce of the request's signature (so a seal holds
 * for that one request only). `cut`: the client went away, and the bytes before are all it sent.
 */
export const BODY_SEAL_TRAILER = 'x-cluster-content-digest'
export type BodyEnd = 'complete' | 'cut'
export interface BodySeal {
  sha256: Buffer
  end: BodyEnd
}

const sealText = (nonce: string, seal: BodySeal) => ['v2-body', nonce, seal.sha256.toString('base64'), seal.end].join('\n')

export function sealBody(secret: string, nonce: string, seal: BodySeal): string {
  return `sha-256=:${seal.sha256.toString('base64')}:, end=${seal.end}, sig=${hmac(secret, sealText(nonce, seal)).toString('hex')}`
}

/** The seal of the request signed with `nonce`, if `value` is one that holds; else undefined. */
export function openBodySeal(secret: string, nonce: string, value: string | undefined): BodySeal | undefined {
  const match = /^sha-256=:([A-Za-z0-9+/]{43}=):, end=(complete|cut), sig=([0-9a-f]{64})$/.exec(value?.trim() ?? '')
  if (!match) return undefined
  const seal: BodySeal = {sha256: Buffer.from(match[1]!, 'base64'), end: match[2] as BodyEnd}
  const expected = hmac(secret, sealText(nonce, seal))
  const given = Buffer.from(match[3]!, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected) ? seal : undefined
}

/**
 * The nonces accepted in the last window. An entry is kept until its signature's time is past
 * the skew allowed, after which the time check refuses the signature anyway.
 */
export class NonceWindow {
  private readonly seen = new Map<string, number>()
  private nextPrune = 0

  /** True the first time `nonce` is seen within its window. */
  claim(nonce: string, signedAt: number, now = Date.now()): boolean {
    const nowSeconds = Math.floor(now / 1000)
    if (nowSeconds >= this.nextPrune) this.prune(nowSeconds)
    const expiry = this.seen.get(nonce)
    if (expiry !== undefined && expiry >= nowSeconds) return false
    this.seen.set(nonce, signedAt + MAX_SKEW_SECONDS + 1)
    return true
  }

  get size(): number {
    return this.seen.size
  }

  private prune(nowSeconds: number): void {
    for (const [nonce, expiry] of this.seen) if (expiry < nowSeconds) this.seen.delete(nonce)
    this.nextPrune = nowSeconds + 10
  }
}
