/**
 * One webhook attempt over HTTP: the signed POST, bounded by WEBHOOK_TIMEOUT and the job's
 * abort signal. Redirects are not followed (a 3xx is a failed attempt): a redirect could lead
 * where the start-up check of WEBHOOK_URL would have refused to go. For the same reason the
 * host is resolved again on every attempt through `connectLookup`, and the connection goes to the
 * address that was checked: a name that pointed outside at start and points at this machine now
 * (DNS rebinding) is refused, not called.
 */
import http from 'node:http'
import https from 'node:https'
import {connectLookup} from './webhook-target.js'
import {signWebhook} from './standard-webhooks.js'

export class WebhookFailed extends Error {
  override name = 'WebhookFailed'
}

export interface WebhookSendOptions {
  timeoutMs: number
  signal: AbortSignal
  /** WEBHOOK_ALLOW_PRIVATE: skip the address check. */
  allowPrivate: boolean
}

export async function sendWebhook(url: string, key: Buffer, delivery: {webhookId: string; body: string}, options: WebhookSendOptions): Promise<number> {
  const target = new URL(url)
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(delivery.body)),
    'user-agent': 'video-ingest-webhooks',
    ...signWebhook(key, delivery.webhookId, delivery.body),
  }
  // A timer of our own, not AbortSignal.timeout(): combined by AbortSignal.any(), a timeout signal
  // nothing else references can be collected before it fires (nodejs/node#57736; seen on Node 20: an attempt to a
  // receiver that never answered hung for good), and the job with it.
  const timeout = new AbortController()
  const timer = setTimeout(() => timeout.abort(new DOMException(`no answer within ${options.timeoutMs} ms`, 'TimeoutError')), options.timeoutMs)
  const signal = AbortSignal.any([options.signal, timeout.signal])
  const request = target.protocol === 'https:' ? https.request : http.request
  return new Promise<number>((resolve, reject) => {
    const fail = (cause: string) => reject(new WebhookFailed(`the webhook receiver could not be reached: ${cause}`))
    const req = request(target, {method: 'POST', headers, signal, lookup: options.allowPrivate ? undefined : connectLookup, agent: false}, (res) => {
      const status = res.statusCode ?? 0
      res.resume() // the answer's body is not read: only its status counts
      res.on('error', () => {})
      if (status < 200 || status > 299) reject(new WebhookFailed(`the webhook receiver answered ${status}`))
      else resolve(status)
    })
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (signal.aborted && (signal.reason as Error | undefined)?.name === 'TimeoutError') fail(`no answer within ${options.timeoutMs} ms`)
      else fail(error.message)
    })
    req.end(delivery.body)
  }).finally(() => clearTimeout(timer))
}
