/**
 * Requests between nodes carry `X-Cluster-Signature: v1 node=<id>,t=<unix seconds>,sig=<hex>`,
 * an HMAC-SHA256 with CLUSTER_SECRET over the method, the path with its query, the time, the
 * sending node and the headers that say what the body is and where it goes (the artifact's digest,
 * the offset it starts at, the peers it is forwarded to). A request older than five minutes, or
 * signed with another secret, is refused.
 */
import {createHmac, timingSafeEqual} from 'node:crypto'

export const SIGNATURE_HEADER = 'x-cluster-signature'
/** Headers whose values the signature covers, besides method, path and time. */
export const SIGNED_HEADERS = ['x-artifact-sha256', 'x-artifact-size', 'upload-offset', 'x-replica-chain'] as const
const MAX_SKEW_SECONDS = 300

export interface SignedRequest {
  method: string
  /** Path and query, as sent. */
  path: string
  headers: Record<string, string | undefined>
}

function canonical(request: SignedRequest, node: string, time: number): string {
  const signed = SIGNED_HEADERS.map((h) => `${h}:${request.headers[h] ?? ''}`)
  return [request.method.toUpperCase(), request.path, String(time), node, ...signed].join('\n')
}

const hmac = (secret: string, text: string) => createHmac('sha256', secret).update(text).digest()

export function signRequest(secret: string, node: string, request: SignedRequest, now = Date.now()): string {
  const time = Math.floor(now / 1000)
  return `v1 node=${node},t=${time},sig=${hmac(secret, canonical(request, node, time)).toString('hex')}`
}

export type Verdict = {ok: true; node: string} | {ok: false; reason: string}

export function verifyRequest(secret: string, header: string | undefined, request: SignedRequest, now = Date.now()): Verdict {
  if (!header) return {ok: false, reason: 'no cluster signature'}
  const match = /^v1 node=([^,\s]{1,128}),t=(\d{1,12}),sig=([0-9a-f]{64})$/.exec(header.trim())
  if (!match) return {ok: false, reason: 'malformed cluster signature'}
  const [, node, time, signature] = match as unknown as [string, string, string, string]
  if (Math.abs(Math.floor(now / 1000) - Number(time)) > MAX_SKEW_SECONDS) return {ok: false, reason: 'cluster signature expired'}
  const expected = hmac(secret, canonical(request, node, Number(time)))
  const given = Buffer.from(signature, 'hex')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return {ok: false, reason: 'cluster signature does not match'}
  return {ok: true, node}
}
