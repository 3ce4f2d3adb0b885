/**
 * Every query on the outbox table: the events a change writes in its own transaction (`append`),
 * what the relay claims and marks, what an upload's event stream reads, the backlog the gauges
 * show and the pruning of old published events. Writers pass their transaction, so an event
 * exists if and only if the change it announces committed.
 */
import type {EntityManager} from 'typeorm'

/** A transaction (EntityManager) or the DataSource: both answer query(). */
type Queryable = Pick<EntityManager, 'query'>

/** An event to write: upload_id is set only while the upload row exists (null when it has vanished). */
export interface NewOutboxEvent {
  topic: string
  uploadId: string | null
  payload: object
}

/** An unpublished event, as the relay claims it. */
export interface ClaimedOutboxEvent {
  id: string
  topic: string
  uploadId: string | null
  payload: Record<string, unknown>
}

/** One of an upload's events, as its event stream sends it. */
export interface UploadOutboxEvent {
  id: string
  topic: string
  payload: unknown
}

/** Rows a multi-row INSERT takes at once (three parameters a row, far below PostgreSQL's limit). */
const APPEND_CHUNK = 1000

export class OutboxRepository {
  /** Writes the events inside the caller's transaction, in the given order (their ids follow it). */
  static async append(tx: Queryable, events: readonly NewOutboxEvent[]): Promise<void> {
    for (let start = 0; start < events.length; start += APPEND_CHUNK) {
      const chunk = events.slice(start, start + APPEND_CHUNK)
      const values = chunk.map((_, i) => `($${3 * i + 1}, (SELECT id FROM uploads WHERE id = $${3 * i + 2}), $${3 * i + 3}::jsonb, now(), 0)`)
      const params = chunk.flatMap((e) => [e.topic, e.uploadId, JSON.stringify(e.payload)])
      await tx.query(`INSERT INTO outbox (topic, upload_id, payload, created_at, attempts) VALUES ${values.join(', ')}`, params)
    }
  }

  /** The oldest unpublished events, locked (FOR UPDATE SKIP LOCKED) so relays on several nodes share them. */
  static async claimUnpublished(tx: Queryable, limit: number): Promise<ClaimedOutboxEvent[]> {
    return (await tx.query(
      `SELECT id, topic, upload_id AS "uploadId", payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit]
    )) as ClaimedOutboxEvent[]
  }

  static async markPublished(tx: Queryable, ids: readonly string[]): Promise<void> {
    await tx.query(`UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1::bigint[])`, [ids])
  }

  /** The broker refused them: they stay unpublished, with the attempt and its reason recorded. */
  static async recordFailedAttempt(tx: Queryable, ids: readonly string[], reason: string): Promise<void> {
    await tx.query(`UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::bigint[])`, [ids, reason])
  }

  /** An upload's events after `afterId`, in order, at most `limit`. */
  static async forUpload(db: Queryable, uploadId: string, afterId: number, limit: number): Promise<UploadOutboxEvent[]> {
    return (await db.query(`SELECT id, topic, payload FROM outbox WHERE upload_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [uploadId, afterId, limit])) as UploadOutboxEvent[]
  }

  /** How many events wait to be published, and the age in seconds of the oldest (0 when none). */
  static async backlog(db: Queryable): Promise<{pending: number; lagSeconds: number}> {
    const rows = (await db.query(
      `SELECT count(*)::int AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS lag FROM outbox WHERE published_at IS NULL`
    )) as Array<{n: number; lag: number}>
    return {pending: rows[0]?.n ?? 0, lagSeconds: Math.max(0, Number(rows[0]?.lag ?? 0))}
  }

  /**
   * Deletes at most `limit` events published more than `retentionMs` ago, with their delivered
   * webhook deliveries; an event whose delivery is still owed (a dead webhook job waiting to be
   * requeued) is kept, as its delivery needs it. Returns how many events were deleted.
   */
  static async prunePublished(tx: EntityManager, retentionMs: number, limit: number): Promise<number> {
    const result = await tx.queryRunner!.query(
      `WITH old AS (
         SELECT o.id FROM outbox o
          WHERE o.published_at < now() - $1::float8 * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = o.id AND d.delivered_at IS NULL)
          ORDER BY o.published_at LIMIT $2 FOR UPDATE SKIP LOCKED),
       deliveries AS (DELETE FROM webhook_deliveries d USING old WHERE d.event_id = old.id)
       DELETE FROM outbox o USING old WHERE o.id = old.id RETURNING o.id`,
      [retentionMs, limit],
      true
    )
    return ((result.records ?? []) as unknown[]).length
  }
}
