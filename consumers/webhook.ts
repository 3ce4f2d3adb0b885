/**
 * webhook: delivers the upload's owed events (upload.completed, upload.ready, upload.failed,
 * job.dead) to WEBHOOK_URL, oldest first, each signed (Standard Webhooks) with the same
 * webhook-id on every attempt. The first that fails stops the pass and the job is retried
 * with backoff; what was delivered stays delivered. Dead after the kind's attempts, requeueable.
 */
import {webhookSecretKey} from '../src/config/index.js'
import {Outcome} from '../src/jobs/outcome.js'
import type {JobHandler} from '../src/jobs/registry.js'
import {WebhookDeliveries} from '../src/webhooks/webhook-deliveries.js'
import {sendWebhook, WebhookFailed} from '../src/webhooks/webhook-sender.js'
import type {ConsumerDeps} from './consumer-deps.js'

export function webhookHandler(deps: ConsumerDeps, url: string, secret: string): JobHandler<'webhook'> {
  const key = webhookSecretKey(secret)
  // Artifact URLs point where clients reach the node: PUBLIC_URL, else the node's own address (known once it listens).
  const origin = () => (deps.config.publicUrl ?? (deps.cluster?.self.url || deps.config.nodeUrl) ?? `http://${deps.config.host}:${deps.config.port}`).replace(/\/$/, '')
  const deliveries = new WebhookDeliveries(deps.db, origin)
  return async (job, context) => {
    const owed = await deliveries.owed(job.uploadId)
    if (owed.length === 0) return Outcome.skipped('no webhook owed')
    for (const delivery of owed) {
      try {
        await sendWebhook(url, key, delivery, {timeoutMs: deps.config.webhookTimeout, signal: context.signal, allowPrivate: deps.config.webhookAllowPrivate})
      } catch (error) {
        if (!(error instanceof WebhookFailed)) throw error
        await deliveries.failed(delivery.eventId, error.message)
        return Outcome.retry(`${delivery.topic} (${delivery.webhookId}): ${error.message}`)
      }
      await deliveries.delivered(delivery.eventId)
      context.log.info({webhookId: delivery.webhookId, topic: delivery.topic}, 'webhook delivered')
    }
    return Outcome.succeeded(`${owed.length} webhook${owed.length === 1 ? '' : 's'} delivered`)
  }
}
