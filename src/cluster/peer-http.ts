/**
 * Streaming HTTP between nodes and from clients to the node that holds an upload: bodies are
 * piped both ways (back-pressure kept, nothing buffered whole), hop-by-hop headers dropped,
 * trailers forwarded, and a client that goes away cancels the upstream request.
 */
import http from 'node:http'
import type {Context} from 'koa'
import {ServiceUnavailable} from '../errors.js'
import {writeInterimResponse} from '../http/resumable-draft/informational.js'
import {ForwardedBody, type ForwardSigner} from './forwarded-body.js'
import {answerError} from '../http/error-answer.js'
import {requestProtocol} from '../http/request-protocol.js'

/** Keep-alive connections to peers, shared by every forwarded request. */
export const peerAgent = new http.Agent({keepAlive: true, maxSockets: 256, keepAliveMsecs: 10_000})

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'expect'])

function forwardableRawHeaders(raw: string[], keepTrailerHeader = false): string[] {
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (HOP_BY_HOP.has(name) && !(keepTrailerHeader && name === 'trailer')) continue
    out.push(raw[i]!, raw[i + 1]!)
  }
  return out
}

/**
 * Forwards the koa request to `base` (same method, path and query) and streams the answer
 * back. A peer that cannot be reached before it answers gives the client a 503 to retry. A
 * request body goes chunked and sealed (ForwardedBody): its sha-256, taken while it streams,
 * is sent in a signed trailer, also when the client goes away mid-body.
 */
export function forwardRequest(ctx: Context, base: string, signer: ForwardSigner, unavailableMessage: string): Promise<void> {
  const target = new URL(ctx.originalUrl, base)
  const body = ForwardedBody.of(ctx.req, signer)
  // Raw header pairs keep the client's names and repeats; Node adds no Host to those.
  const headers: Array<[string, string]> = [['Host', target.host]]
  const raw = forwardableRawHeaders(ctx.req.rawHeaders, true)
  for (let i = 0; i < raw.length; i += 2) {
    if (!body?.drops(raw[i]!)) headers.push([raw[i]!, raw[i + 1]!])
  }
  // What a load balancer in front already said about the client stays as it said it.
  if (!ctx.get('x-forwarded-for')) headers.push(['X-Forwarded-For', ctx.ip])
  if (!ctx.get('x-forwarded-host')) headers.push(['X-Forwarded-Host', ctx.host])
  if (!ctx.get('x-forwarded-proto')) headers.push(['X-Forwarded-Proto', ctx.protocol])
  if (body) headers.push(...body.headers())
  for (const [name, value] of Object.entries(signer.sign(headerMap(headers)))) headers.push([name, value])

  ctx.respond = false
  return new Promise<void>((resolve) => {
    const upstream = http.request(target, {method: ctx.req.method, headers: headers.flat(), agent: peerAgent})
    let answered = false
    // The owner's interim answers (104 Upload Resumption Supported: the offset reached while a
    // long append streams) reach the client as the owner sent them.
    upstream.on('information', (info) => {
      if (info.statusCode === 104) writeInterimResponse(ctx.req, ctx.res, 104, info.statusMessage || 'Upload Resumption Supported', interimFields(info.rawHeaders))
    })
    upstream.on('response', (res) => {
      answered = true
      // Nobody to tell: the owner's answer to a body sealed as cut is read and dropped.
      if (clientLeft) return void res.resume()
      ctx.res.writeHead(res.statusCode ?? 502, res.statusMessage, forwardableRawHeaders(res.rawHeaders))
      res.pipe(ctx.res)
      res.on('end', () => {
        // Answered before the whole body was sent (a 409, a 413): the owner wants no more of it.
        // The client's rest is read and dropped here, so its connection stays usable.
        if (!ctx.req.complete) {
          ctx.req.unpipe(upstream)
          upstream.destroy()
          ctx.req.resume()
        }
        resolve()
      })
      // The owner's connection lost mid-answer: the client's answer is cut too, never completed by us.
      res.on('close', () => {
        if (res.complete) return
        ctx.res.destroy()
        resolve()
      })
      res.on('error', () => ctx.res.destroy())
    })
    upstream.on('error', () => {
      if (answered) {
        // The owner answered, then stopped reading the body (a 409 at the wrong offset): its
        // answer is relayed whole by the events above; the rest of the client's body is dropped.
        ctx.req.unpipe(upstream)
        ctx.req.resume()
        return
      }
      if (!ctx.res.headersSent && !ctx.res.destroyed) {
        // koa is out of the way (respond = false): the answer is written here, as any error's is.
        const answer = answerError(new ServiceUnavailable(unavailableMessage, {'Retry-After': '10'}), requestProtocol(ctx))
        ctx.res.writeHead(answer.status, answer.headers)
        ctx.res.end(answer.body)
      } else {
        ctx.res.destroy()
      }
      resolve()
    })
    // The client went away mid-body: a sealed body tells the owner where it ended, so the owner
    // keeps what arrived; anything else (or a client gone mid-answer, a download cut short) lets
    // the owner's request, and its file, go.
    let clientLeft = false
    const clientGone = () => {
      if (clientLeft) return
      clientLeft = true
      if (body && !ctx.req.complete && !upstream.destroyed && !upstream.writableEnded) {
        ctx.req.unpipe(upstream)
        upstream.addTrailers(body.trailers({}, 'cut'))
        upstream.end()
      } else {
        upstream.destroy()
      }
      resolve()
    }
    ctx.req.on('close', () => {
      if (!ctx.req.complete) clientGone()
    })
    ctx.res.on('close', () => {
      if (!ctx.res.writableFinished) clientGone()
    })
    body?.observe()
    ctx.req.pipe(upstream, {end: false})
    ctx.req.on('end', () => {
      if (upstream.destroyed || upstream.writableEnded) return
      const trailers = body ? body.trailers(ctx.req.trailers, 'complete') : ctx.req.trailers
      if (Object.keys(trailers).length > 0) upstream.addTrailers(trailers)
      upstream.end()
    })
  })
}

function headerMap(pairs: Array<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of pairs) {
    const key = name.toLowerCase()
    out[key] = out[key] === undefined ? value : `${out[key]}, ${value}`
  }
  return out
}

function interimFields(raw: string[]): Record<string, string> {
  const fields: Record<string, string> = {}
  for (let i = 0; i < raw.length; i += 2) fields[raw[i]!] = raw[i + 1]!
  return fields
}

/** PEER_IDLE_TIMEOUT's default. */
export const PEER_IDLE_TIMEOUT_MS = 30_000

export class PeerIdle extends Error {
  override name = 'PeerIdle'
}

/**
 * A signed request to a peer, for internal endpoints. A connection that moves no byte for
 * `idleMs` (a peer frozen, or cut off without a reset: its socket stays open, its window shut)
 * is destroyed, failing the request or its answer's stream: the copy fails as any other would
 * and the catch-up loop tries again later, instead of holding the job (and, with a shared read,
 * the other copies) forever.
 */
export function peerRequest(url: URL, options: {method: string; headers: Record<string, string>; body?: NodeJS.ReadableStream; signal?: AbortSignal; idleMs: number}): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {method: options.method, headers: options.headers, agent: peerAgent, signal: options.signal})
    req.setTimeout(options.idleMs, () => req.destroy(new PeerIdle(`${url.host} moved no byte for ${options.idleMs} ms`)))
    req.on('response', resolve)
    req.on('error', reject)
    if (options.body) {
      options.body.on('error', (error) => req.destroy(error as Error))
      options.body.pipe(req)
    } else {
      req.end()
    }
  })
}

/** Reads a small response body (an error message) and returns it as text. */
export async function readText(res: http.IncomingMessage, limit = 4096): Promise<string> {
  let text = ''
  for await (const chunk of res) {
    if (text.length < limit) text += (chunk as Buffer).toString('utf8')
  }
  return text.slice(0, limit)
}
