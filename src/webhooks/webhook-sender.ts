/**
 * One webhook attempt over HTTP: the signed POST, bounded by WEBHOOK_TIMEOUT and the job's
 * abort signal. Redirects are not followed (a 3xx is a failed attempt): a redirect could lead
 * where the start-up check of WEBHOOK_URL would have refused to go.
 */
import {signWebhook} from './standard-webhooks.js'

export class WebhookFailed extends Error {
  override name = 'WebhookFailed'
}

export async function sendWebhook(url: string, key: Buffer, delivery: {webhookId: string; body: string}, options: {timeoutMs: number; signal: AbortSignal}): Promise<number> {
  const headers = {'content-type': 'application/json', 'user-agent': 'video-ingest-webhooks', ...signWebhook(key, delivery.webhookId, delivery.body)}
  let res: Response
  try {
    res = await fetch(url, {method: 'POST', headers, body: delivery.body, redirect: 'manual', signal: AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)])})
  } catch (error) {
    const cause = (error as Error).name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : ((error as {cause?: Error}).cause?.message ?? (error as Error).message)
    throw new WebhookFailed(`the webhook receiver could not be reached: ${cause}`)
  }
  await res.body?.cancel().catch(() => {})
  if (res.status < 200 || res.status > 299) throw new WebhookFailed(`the webhook receiver answered ${res.status}`)
  return res.status
}
