/**
 * The gauges only the database knows (active uploads, jobs by status, queue depth, outbox lag),
 * read when Prometheus scrapes. A slow database must not hang the scrape: past the timeout the
 * gauges keep their last values and ingest_metrics_database_up says 0.
 */
import type {DataSource} from 'typeorm'
import {OutboxRepository} from '../events/outbox-repository.js'
import {JOB_KINDS} from '../jobs/job-kinds.js'
import {JOB_STATUSES, JobStatus} from '../jobs/job-status.js'
import {UPLOAD_STATUSES, UploadStatus} from '../uploads/upload-status.js'
import type {NodeMetrics} from './node-metrics.js'
import {withTimeout} from '../timeouts.js'

/** Statuses in which a job waits for a worker: its message is in (or on its way back to) the queue. */
const WAITING: readonly string[] = [JobStatus.Queued, JobStatus.Failed]

export async function readDatabaseGauges(metrics: NodeMetrics, db: DataSource, nodeId: string, timeoutMs: number): Promise<void> {
  try {
    const [uploads, jobs, outbox] = await withTimeout(
      Promise.all([
        db.query(`SELECT status, count(*)::int AS n FROM uploads WHERE node_id = $1 GROUP BY status`, [nodeId]) as Promise<Array<{status: string; n: number}>>,
        db.query(`SELECT kind, status, count(*)::int AS n FROM jobs GROUP BY kind, status`) as Promise<Array<{kind: string; status: string; n: number}>>,
        OutboxRepository.backlog(db),
      ]),
      timeoutMs
    )
    for (const status of UPLOAD_STATUSES) metrics.uploadsByStatus.set({status}, uploads.find((row) => row.status === status)?.n ?? 0)
    metrics.activeUploads.set(uploads.find((row) => row.status === UploadStatus.Uploading)?.n ?? 0)
    // Every (kind, status) pair is set, to 0 when absent, so a drained status shows 0 rather than its last count.
    for (const kind of JOB_KINDS) {
      let waiting = 0
      for (const status of JOB_STATUSES) {
        const n = jobs.find((row) => row.kind === kind && row.status === status)?.n ?? 0
        metrics.jobs.set({kind, status}, n)
        if (WAITING.includes(status)) waiting += n
      }
      metrics.queueDepth.set({kind}, waiting)
    }
    metrics.outboxPending.set(outbox.pending)
    metrics.outboxLag.set(outbox.lagSeconds)
    metrics.databaseScrapeUp.set(1)
  } catch {
    metrics.databaseScrapeUp.set(0)
  }
}

