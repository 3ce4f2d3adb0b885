/**
 * The deliveries a webhook job owes: one per event (an outbox row), recorded by the outbox relay
 * in the transaction that starts the job (`record`), marked delivered after a 2xx. The body of
 * each is built when it is sent, in the specification's shape
 * `{"type", "timestamp", "data"}`; its webhook-id is `msg_<outbox id>`, the same on every retry.
 */
import type {DataSource, EntityManager} from 'typeorm'
import {ArtifactRepository} from '../media/artifact-repository.js'
import {UploadEntity} from '../db/entities/upload.js'
import {artifactsView} from '../http/routes/uploads.js'

export interface OwedDelivery {
  eventId: string
  /** `msg_<outbox id>`: receivers dedupe on it. */
  webhookId: string
  topic: string
  attempts: number
}

interface OwedRow {
  event_id: string
  topic: string
  attempts: number
  payload: Record<string, unknown>
  created_at: Date
}

export class WebhookDeliveries {
  constructor(
    private readonly db: DataSource,
    /** Where artifact URLs in upload.ready point (PUBLIC_URL, else this node's URL). */
    private readonly origin: () => string
  ) {}

  /** Called by the relay, inside its transaction: these events are owed to the receiver. */
  static async record(tx: EntityManager, events: Array<{eventId: string; uploadId: string; topic: string}>): Promise<void> {
    if (events.length === 0) return
    await tx.query(
      `INSERT INTO webhook_deliveries (event_id, upload_id, topic)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT (event_id) DO NOTHING`,
      [events.map((e) => e.eventId), events.map((e) => e.uploadId), events.map((e) => e.topic)]
    )
  }

  /** The upload's deliveries not yet answered with a 2xx, oldest first, each with its body. */
  async owed(uploadId: string): Promise<Array<OwedDelivery & {body: string}>> {
    const rows = (await this.db.query(
      `SELECT d.event_id, d.topic, d.attempts, o.payload, o.created_at
         FROM webhook_deliveries d JOIN outbox o ON o.id = d.event_id
        WHERE d.upload_id = $1 AND d.delivered_at IS NULL ORDER BY d.event_id`,
      [uploadId]
    )) as OwedRow[]
    const out: Array<OwedDelivery & {body: string}> = []
    for (const row of rows) {
      const data = await this.data(uploadId, row)
      const body = JSON.stringify({type: row.topic, timestamp: new Date(row.created_at).toISOString(), data})
      out.push({eventId: String(row.event_id), webhookId: `msg_${row.event_id}`, topic: row.topic, attempts: row.attempts, body})
    }
    return out
  }

  async delivered(eventId: string): Promise<void> {
    await this.db.query(`UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = NULL, delivered_at = now() WHERE event_id = $1`, [eventId])
  }

  async failed(eventId: string, error: string): Promise<void> {
    await this.db.query(`UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $2 WHERE event_id = $1`, [eventId, error])
  }

  /** The upload as the event describes it: its status is the event's (the row may have moved on since). */
  private async data(uploadId: string, row: OwedRow): Promise<Record<string, unknown>> {
    const upload = await this.db.getRepository(UploadEntity).findOneBy({id: uploadId})
    const status = row.topic.startsWith('upload.') ? row.topic.slice('upload.'.length) : (upload?.status ?? null)
    const data: Record<string, unknown> = {
      id: uploadId,
      owner: upload?.owner ?? null,
      status,
      filename: upload?.filename ?? null,
      size: upload?.size ?? null,
      sha256: upload?.sha256 ?? null,
    }
    if (row.topic === 'upload.failed') data.reason = (row.payload.reason as string | undefined) ?? upload?.failureReason ?? null
    if (row.topic === 'upload.ready') {
      const artifacts = await new ArtifactRepository(this.db).list(uploadId)
      data.artifacts = artifactsView(this.origin(), artifacts)
    }
    if (row.topic === 'job.dead') data.job = {kind: row.payload.kind, attempt: row.payload.attempt, error: row.payload.error}
    return data
  }
}
