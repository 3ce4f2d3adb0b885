/**
 * The outbox relay: publishes outbox rows (events written in the same transaction as the change
 * they announce) and the jobs they start, then marks them sent, only after the broker confirmed.
 * Every event is published; the jobs a batch starts, once per (kind, upload): an HLS ladder's
 * hundreds of artifact.created rows start one fanout message, not hundreds.
 * Rows are claimed with FOR UPDATE SKIP LOCKED, so relays on several nodes share the work
 * without publishing a row twice in the normal case; a crash between confirm and commit
 * publishes it again, which idempotent consumers absorb. While the broker is down, the relay
 * backs off (doubling up to a cap) and the rows simply wait.
 */
import pg from 'pg'
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import type {Broker} from './broker.js'
import type {JobKind} from './job-kinds.js'
import type {JobRepository} from './job-repository.js'
import {isWebhookEvent, JOB_TRIGGERS, jobMessage} from './messages.js'
import {WebhookDeliveries} from '../webhooks/webhook-deliveries.js'
import {type ClaimedOutboxEvent, OutboxRepository} from '../events/outbox-repository.js'

export interface OutboxRelayOptions {
  /** How often to look for rows when nothing woke the relay. */
  pollIntervalMs: number
  batchSize?: number
  /** Backoff while the broker is unavailable: from this, doubling, up to maxBackoffMs. */
  minBackoffMs?: number
  maxBackoffMs?: number
  /** PostgreSQL URL and schema to LISTEN on for new rows (absent: polling only). */
  listen?: {url: string; schema: string}
  /** WEBHOOK_URL is set: the events webhooks carry also start a webhook job, each recorded as a delivery it owes. */
  webhooks?: boolean
}

export class OutboxRelay {
  private running = false
  private loop?: Promise<void>
  private wake?: () => void
  /** A kick that came while a batch was in hand: the next sleep is skipped. */
  private kicked = false
  private listener?: pg.Client
  private failures = 0

  constructor(
    private readonly db: DataSource,
    private readonly broker: Broker,
    private readonly jobs: JobRepository,
    private readonly log: Logger,
    private readonly options: OutboxRelayOptions
  ) {}

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    if (this.options.listen) await this.startListening(this.options.listen)
    this.loop = this.run()
  }

  /** Look now (a row was just written in this process, or a notification arrived). */
  kick(): void {
    this.kicked = true
    this.wake?.()
  }

  /** Finishes the batch in hand, then stops. */
  async stop(): Promise<void> {
    this.running = false
    this.kick()
    await this.loop
    await this.listener?.end().catch(() => {})
  }

  /**
   * Publishes one batch. Returns how many rows were sent; throws when the broker could not
   * take them (the rows stay unsent, with the attempt and error recorded).
   */
  async relayBatch(): Promise<number> {
    const limit = this.options.batchSize ?? 100
    const result = await this.db.transaction(async (tx) => {
      const rows = await OutboxRepository.claimUnpublished(tx, limit)
      if (rows.length === 0) return {sent: 0}
      const ids = rows.map((r) => r.id)
      const started = this.jobsStartedBy(rows)
      // The work the messages point at is written, and its job rows locked, before they are
      // published: a consumer's begin() waits for this commit, so it never reads the deliveries
      // or jobs of this batch half-written (a webhook attempt that looked too early would
      // succeed without the new delivery, and nothing would ask for it again).
      for (const {uploadId, kinds} of started) await this.jobs.enqueue(tx, uploadId, kinds, {lock: true})
      if (this.options.webhooks) await WebhookDeliveries.record(tx, this.webhookEvents(rows))
      try {
        await Promise.all([
          ...rows.map((row) => this.broker.publishEvent(row.topic, row.payload)),
          ...started.map(({uploadId, kinds}) => kinds.map((kind) => this.broker.publishJob(jobMessage(kind, uploadId)))).flat(),
        ])
      } catch (error) {
        // Committed, not rolled back: the rows keep a record of the failed attempt.
        const reason = error instanceof Error ? error.message : String(error)
        await OutboxRepository.recordFailedAttempt(tx, ids, reason)
        return {sent: 0, error}
      }
      await OutboxRepository.markPublished(tx, ids)
      return {sent: rows.length}
    })
    if ('error' in result) throw result.error
    return result.sent
  }

  /**
   * The jobs a batch of rows starts (JOB_TRIGGERS), each (kind, upload) once, in a fixed order:
   * relays recording job rows for the same uploads then take their locks in the same order.
   */
  private jobsStartedBy(rows: ClaimedOutboxEvent[]): Array<{uploadId: string; kinds: JobKind[]}> {
    const byUpload = new Map<string, Set<JobKind>>()
    const webhooks = new Set(this.webhookEvents(rows).map((e) => e.eventId))
    for (const row of rows) {
      const uploadId = this.uploadIdOf(row)
      const kinds: readonly JobKind[] = [...(JOB_TRIGGERS[row.topic] ?? []), ...(webhooks.has(row.id) ? (['webhook'] as const) : [])]
      if (!uploadId || kinds.length === 0) continue
      const owed = byUpload.get(uploadId) ?? new Set<JobKind>()
      for (const kind of kinds) owed.add(kind)
      byUpload.set(uploadId, owed)
    }
    return [...byUpload.keys()].sort().map((uploadId) => ({uploadId, kinds: [...byUpload.get(uploadId)!].sort()}))
  }

  private webhookEvents(rows: ClaimedOutboxEvent[]): Array<{eventId: string; uploadId: string; topic: string}> {
    if (!this.options.webhooks) return []
    return rows.flatMap((row) => {
      const uploadId = this.uploadIdOf(row)
      return uploadId && isWebhookEvent(row.topic, row.payload) ? [{eventId: String(row.id), uploadId, topic: row.topic}] : []
    })
  }

  private uploadIdOf(row: ClaimedOutboxEvent): string | null {
    return row.uploadId ?? (typeof row.payload.uploadId === 'string' ? row.payload.uploadId : null)
  }

  private async run(): Promise<void> {
    while (this.running) {
      let sent = 0
      this.kicked = false
      try {
        sent = await this.relayBatch()
        if (this.failures > 0) this.log.info({afterFailures: this.failures}, 'outbox relay publishing again')
        this.failures = 0
      } catch (error) {
        this.failures++
        const level = this.failures === 1 || this.failures % 20 === 0 ? 'warn' : 'debug'
        this.log[level]({err: error, failures: this.failures}, 'outbox relay could not publish; backing off')
      }
      if (sent >= (this.options.batchSize ?? 100)) continue
      await this.sleep(this.failures > 0 ? this.backoff() : this.options.pollIntervalMs)
    }
  }

  private backoff(): number {
    const min = this.options.minBackoffMs ?? 100
    const max = this.options.maxBackoffMs ?? 10_000
    return Math.min(max, min * 2 ** Math.min(this.failures - 1, 20))
  }

  private sleep(ms: number): Promise<void> {
    if (this.kicked && this.failures === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        resolve()
      }
      // A notification cuts a poll short, never a backoff: a down broker is not hammered.
      this.wake = this.failures > 0 ? () => (this.running ? undefined : done()) : done
    })
  }

  private async startListening(listen: {url: string; schema: string}): Promise<void> {
    const client = new pg.Client({connectionString: listen.url})
    client.on('error', (error) => this.log.warn({err: error}, 'outbox listener lost its connection; polling only'))
    client.on('notification', (message) => {
      if (message.payload === listen.schema) this.kick()
    })
    try {
      await client.connect()
      await client.query('LISTEN outbox_inserted')
      this.listener = client
    } catch (error) {
      this.log.warn({err: error}, 'could not LISTEN for outbox rows; polling only')
      await client.end().catch(() => {})
    }
  }
}
