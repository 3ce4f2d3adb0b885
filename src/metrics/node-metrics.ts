/**
 * src/metrics: what a node tells Prometheus. Each node instance owns its registry (tests run
 * several nodes in one process), and every metric is declared here, in one place. Other modules
 * feed it through small typed calls; nothing else imports prom-client.
 */
import {collectDefaultMetrics, Counter, Gauge, Histogram, Registry} from 'prom-client'
import type {JobKind} from '../jobs/job-kinds.js'

/** How an attempt ended, as the runner settles it. */
export type JobSettlement = 'succeeded' | 'failed' | 'dead'

/**
 * The cluster's hook: replication reports how far behind each peer is. Kept as an interface so
 * the cluster module depends on this contract, not on prom-client.
 */
export interface ReplicationLagRecorder {
  /** Seconds between an artifact being ready here and its verified copy on `peer` (or the oldest copy still owed). */
  observeLag(peer: string, seconds: number): void
  /** The peer left the live set: stop reporting it. */
  forgetPeer(peer: string): void
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
const JOB_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200]

export class NodeMetrics {
  readonly registry = new Registry()

  readonly uploadsCreated = new Counter({name: 'ingest_uploads_created_total', help: 'Uploads created on this node (tus and resumable draft, partial uploads included).', registers: [this.registry]})
  readonly uploadsCompleted = new Counter({name: 'ingest_uploads_completed_total', help: 'Uploads this node completed (all bytes stored and hashed).', registers: [this.registry]})
  readonly uploadsExpired = new Counter({name: 'ingest_uploads_expired_total', help: 'Unfinished uploads this node expired (no progress within UPLOAD_EXPIRY).', registers: [this.registry]})
  readonly bytesReceived = new Counter({name: 'ingest_upload_bytes_received_total', help: 'Upload bytes written to this node\'s storage.', registers: [this.registry]})
  readonly activeUploads = new Gauge({name: 'ingest_uploads_active', help: 'Unfinished uploads held by this node (from the database, at scrape).', registers: [this.registry]})
  /**
   * Failures are written by several modules (concatenation, media jobs, possibly on other
   * processes): the rows are the one place that knows them all, so they are counted there.
   */
  readonly uploadsByStatus = new Gauge({
    name: 'ingest_uploads',
    help: 'Uploads held by this node, by status (uploading, completed, processing, ready, failed, expired, terminated; from the database, at scrape).',
    labelNames: ['status'] as const,
    registers: [this.registry],
  })

  readonly requestDuration = new Histogram({
    name: 'ingest_http_request_duration_seconds',
    help: 'HTTP request latency, from arrival to the last byte of the answer, by endpoint (tus, draft, api, media, ops), method and status.',
    labelNames: ['endpoint', 'method', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  })

  readonly jobsSettled = new Counter({name: 'ingest_jobs_total', help: 'Job attempts this process settled, by kind and outcome.', labelNames: ['kind', 'status'] as const, registers: [this.registry]})
  readonly jobDuration = new Histogram({
    name: 'ingest_job_duration_seconds',
    help: 'How long job attempts ran in this process, by kind and outcome.',
    labelNames: ['kind', 'status'] as const,
    buckets: JOB_BUCKETS,
    registers: [this.registry],
  })
  readonly jobs = new Gauge({name: 'ingest_jobs', help: 'Jobs in the jobs table, by kind and status (from the database, at scrape).', labelNames: ['kind', 'status'] as const, registers: [this.registry]})
  readonly queueDepth = new Gauge({name: 'ingest_queue_depth', help: 'Jobs waiting to run (queued, or failed with a retry scheduled), by kind (from the database, at scrape).', labelNames: ['kind'] as const, registers: [this.registry]})
  readonly outboxPending = new Gauge({name: 'ingest_outbox_pending', help: 'Outbox events not yet published.', registers: [this.registry]})
  readonly outboxLag = new Gauge({name: 'ingest_outbox_lag_seconds', help: 'Age of the oldest unpublished outbox event (0 when none).', registers: [this.registry]})
  readonly databaseScrapeUp = new Gauge({name: 'ingest_metrics_database_up', help: '1 when the database gauges were read at this scrape; 0 when the database did not answer in time (the gauges keep their last values).', registers: [this.registry]})

  readonly replicationLag = new Gauge({name: 'ingest_replication_lag_seconds', help: 'How far behind each peer is in receiving this node\'s artifacts.', labelNames: ['peer'] as const, registers: [this.registry]})

  readonly retentionRemoved = new Counter({name: 'ingest_retention_removed_total', help: 'What the retention job removed: expired/terminated upload rows, completed originals, published events.', labelNames: ['what'] as const, registers: [this.registry]})

  constructor(labels: {nodeId: string}) {
    this.registry.setDefaultLabels({node: labels.nodeId})
    collectDefaultMetrics({register: this.registry})
  }

  jobSettled(kind: JobKind, status: JobSettlement, seconds: number): void {
    this.jobsSettled.inc({kind, status})
    this.jobDuration.observe({kind, status}, seconds)
  }

  readonly replication: ReplicationLagRecorder = {
    observeLag: (peer, seconds) => this.replicationLag.set({peer}, seconds),
    forgetPeer: (peer) => this.replicationLag.remove({peer}),
  }

  async text(): Promise<{contentType: string; body: string}> {
    return {contentType: this.registry.contentType, body: await this.registry.metrics()}
  }
}
