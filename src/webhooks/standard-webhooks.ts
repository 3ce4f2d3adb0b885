/**
 * Signatures as the Standard Webhooks specification defines them
 * (https://www.standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "<webhook-id>.<webhook-timestamp>.<body>">`, keyed with the secret's bytes, so receivers can
 * verify with any of the specification's libraries.
 */
import {createHmac} from 'node:crypto'

export interface WebhookHeaders {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

/** The three headers of one attempt: the id stays the same across retries; the timestamp is the attempt's. */
export function signWebhook(key: Buffer, id: string, body: string, now = new Date()): WebhookHeaders {
  const timestamp = String(Math.floor(now.getTime() / 1000))
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')
  return {'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}`}
}
