/**
 * Retention: what becomes of uploads after their life ends. Not the UploadSweeper's job:
 *
 * - UploadSweeper (upload-sweeper.ts) runs on every node, often, for that node's own unfinished
 *   uploads: it expires the ones that stopped making progress (deletes their bytes, keeps the row
 *   as `expired` so clients get 410 Gone) and finishes completions a crash interrupted.
 * - UploadRetention (this file) runs rarely, on one node at a time (a PostgreSQL advisory lock),
 *   on what the sweeper and the media pipeline left behind: it deletes the rows of expired and
 *   terminated uploads once a grace period has passed, and, when ORIGINAL_RETENTION is set,
 *   deletes completed originals whose artifacts exist, marking the row (original_removed_at);
 *   and it prunes published events (outbox rows and the webhook deliveries made of them) older
 *   than EVENT_RETENTION, so the tables that every upload writes to do not grow forever.
 *
 * Rows any node may delete; an original's bytes are on the disk of the node that received it, so
 * each node removes only its own (the lock holder changes from pass to pass, so each gets its turn).
 */
import {unlink} from 'node:fs/promises'
import type {Logger} from 'pino'
import {PeriodicTask} from '../lifecycle/periodic-task.js'
import {OutboxRepository} from '../events/outbox-repository.js'
import type {DataSource, EntityManager} from 'typeorm'

export interface RetentionOptions {
  nodeId: string
  /** Where this node keeps an upload's bytes. */
  filePath(uploadId: string): string
  /** How long an expired or terminated upload's row stays (410 Gone) before it is deleted. */
  expiredGraceMs: number
  /** How long after completion an original is kept once its artifacts exist; undefined: forever. */
  originalRetentionMs: number | undefined
  /**
   * How long a published event stays (an SSE client resuming from it, a webhook body built from
   * it); one whose webhook delivery is still owed stays until it is delivered.
   */
  eventRetentionMs: number
  /** Between passes; 0: no timer (runOnce only). */
  intervalMs: number
  batchSize?: number
}

export interface RetentionReport {
  /** Ids of expired/terminated uploads whose rows were deleted. */
  deletedRows: string[]
  /** Ids of uploads whose original file this node removed. */
  removedOriginals: string[]
  /** How many published events (outbox rows) were deleted. */
  prunedEvents: number
}

const LOCK = 'video-ingest:retention'

export class UploadRetention {
  private readonly task: PeriodicTask<RetentionReport | null>
  private readonly listeners: Array<(report: RetentionReport) => void> = []

  constructor(
    private readonly db: DataSource,
    private readonly log: Logger,
    private readonly options: RetentionOptions
  ) {
    this.task = new PeriodicTask(() => this.pass(), options.intervalMs)
  }

  /** Called after each pass this node ran (not when another node held the lock). */
  onReport(listener: (report: RetentionReport) => void): void {
    this.listeners.push(listener)
  }

  start(): void {
    this.task.start()
  }

  stop(): Promise<void> {
    return this.task.stop()
  }

  /** One pass; null when another node is running one. Concurrent calls here share the pass. */
  runOnce(): Promise<RetentionReport | null> {
    return this.task.runNow()
  }

  private async pass(): Promise<RetentionReport | null> {
    try {
      // A transaction-scoped lock: released by the commit, or by the server if this node dies.
      const report = await this.db.transaction(async (tx) => {
        const [{locked}] = (await tx.query(`SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked`, [LOCK])) as [{locked: boolean}]
        if (!locked) return null
        return {deletedRows: await this.deleteGoneRows(tx), removedOriginals: await this.removeOriginals(tx), prunedEvents: await this.pruneEvents(tx)}
      })
      if (!report) return null
      if (report.deletedRows.length || report.removedOriginals.length || report.prunedEvents) {
        this.log.info({deletedRows: report.deletedRows.length, removedOriginals: report.removedOriginals.length, prunedEvents: report.prunedEvents}, 'retention pass')
      }
      for (const listener of this.listeners) listener(report)
      return report
    } catch (error) {
      this.log.warn({err: error}, 'retention pass failed; will try again')
      throw error
    }
  }

  /**
   * Expired and terminated uploads past the grace period, with their jobs. Uploads that still
   * have artifacts are left alone: their files live on nodes' disks, and deleting the rows would
   * orphan them.
   */
  private async deleteGoneRows(tx: EntityManager): Promise<string[]> {
    const rows = (await records(
      tx,
      `DELETE FROM uploads WHERE id IN (
         SELECT u.id FROM uploads u
         WHERE u.status IN ('expired', 'terminated') AND u.updated_at < now() - $1::float8 * interval '1 millisecond'
           AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.upload_id = u.id)
         ORDER BY u.updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING id, node_id`,
      [this.options.expiredGraceMs, this.options.batchSize ?? 1000]
    )) as Array<{id: string; node_id: string}>
    const ids = rows.map((r) => r.id)
    if (ids.length === 0) return ids
    await tx.query(`DELETE FROM jobs WHERE upload_id = ANY($1::text[])`, [ids])
    // The sweeper (or the DELETE request) removed their bytes; a leftover from a crash in between goes now.
    for (const row of rows) if (row.node_id === this.options.nodeId) await unlink(this.options.filePath(row.id)).catch(ignoreMissing)
    return ids
  }

  /**
   * This node's originals of `ready` uploads completed more than originalRetention ago, whose
   * renditions exist (an mp4 or hls artifact) and whose jobs have all ended: nothing will read
   * the original again. The file goes first, then the mark; a crash in between removes it again
   * (a missing file is fine) and marks it next time.
   */
  private async removeOriginals(tx: EntityManager): Promise<string[]> {
    if (this.options.originalRetentionMs === undefined) return []
    const rows = (await tx.query(
      `SELECT u.id FROM uploads u
       WHERE u.node_id = $1 AND u.status = 'ready' AND u.original_removed_at IS NULL
         AND u.completed_at < now() - $2::float8 * interval '1 millisecond'
         AND EXISTS (SELECT 1 FROM artifacts a WHERE a.upload_id = u.id AND a.kind IN ('mp4', 'hls'))
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.upload_id = u.id AND j.status NOT IN ('succeeded', 'dead'))
       ORDER BY u.completed_at LIMIT $3 FOR UPDATE OF u SKIP LOCKED`,
      [this.options.nodeId, this.options.originalRetentionMs, this.options.batchSize ?? 1000]
    )) as Array<{id: string}>
    const removed: string[] = []
    for (const {id} of rows) {
      await unlink(this.options.filePath(id)).catch(ignoreMissing)
      await tx.query(`UPDATE uploads SET original_removed_at = now() WHERE id = $1`, [id])
      this.log.info({uploadId: id}, 'original removed (retention); its artifacts remain')
      removed.push(id)
    }
    return removed
  }

  /**
   * Published events older than EVENT_RETENTION, with their delivered webhook deliveries; an
   * event whose delivery is still owed (a dead webhook job waiting to be requeued) is kept, as
   * its delivery needs it. One batch per pass, as the other steps.
   */
  private pruneEvents(tx: EntityManager): Promise<number> {
    return OutboxRepository.prunePublished(tx, this.options.eventRetentionMs, this.options.batchSize ?? 1000)
  }

}

/** Rows of any statement (TypeORM's query() answers a DELETE … RETURNING with [rows, count]). */
async function records(tx: EntityManager, sql: string, params: unknown[]): Promise<unknown[]> {
  const result = await tx.queryRunner!.query(sql, params, true)
  return (result.records ?? []) as unknown[]
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error
}
