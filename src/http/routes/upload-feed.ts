/**
 * What feeds the event streams of one node: one UploadFeed per upload that has open streams,
 * refreshed when UploadChanges says the upload changed (or, while the listener is down, every
 * poll interval). A refresh reads the upload's new outbox rows, its row and its jobs once, for
 * all its streams; each stream keeps its own cursor (Last-Event-ID) and what it last showed.
 */
import type {DataSource} from 'typeorm'
import type {UploadRecord} from '../../db/entities/upload.js'
import type {JobRepository} from '../../jobs/job-repository.js'
import type {UploadChanges} from '../../uploads/upload-changes.js'
import type {UploadRepository} from '../../uploads/upload-repository.js'
import {OutboxRepository, type UploadOutboxEvent} from '../../events/outbox-repository.js'
import {jobView, uploadView} from './uploads.js'

const OUTBOX_BATCH = 500

/** One open stream, as its feed sees it. */
export class StreamSubscriber {
  private lastStatus = ''
  private readonly lastProgress = new Map<string, number>()

  constructor(
    /** The last outbox id this stream has (its Last-Event-ID, then the last sent). */
    public cursor: number,
    private readonly send: (event: string, data: unknown, id: number) => void,
    /** The upload is gone: the stream ends. */
    readonly end: () => void,
    /** The URL an artifact.created event's file is served at, added to the event as `url`. */
    private readonly artifactUrl?: (path: string) => string
  ) {}

  deliver(outbox: UploadOutboxEvent[], row: UploadRecord, jobs: Array<ReturnType<typeof jobView>>): void {
    for (const event of outbox) {
      const id = Number(event.id)
      if (id <= this.cursor) continue
      this.cursor = id
      const path = event.topic === 'artifact.created' ? (event.payload as {path?: unknown}).path : undefined
      this.send(event.topic, this.artifactUrl && typeof path === 'string' ? {...(event.payload as object), url: this.artifactUrl(path)} : event.payload, id)
    }
    const status = JSON.stringify([row.status, row.failureReason, jobs.map((j) => [j.kind, j.status])])
    if (status !== this.lastStatus) {
      this.lastStatus = status
      this.send('status', {...uploadView(row), jobs}, this.cursor)
    }
    for (const job of jobs) {
      if (job.status === 'running' && this.lastProgress.get(job.kind) !== job.progress) {
        this.lastProgress.set(job.kind, job.progress)
        this.send('progress', {kind: job.kind, progress: job.progress}, this.cursor)
      }
    }
  }
}

interface FeedDeps {
  db: DataSource
  uploads: UploadRepository
  jobs: JobRepository
}

class UploadFeed {
  readonly subscribers = new Set<StreamSubscriber>()
  private running?: Promise<void>
  private again = false

  constructor(
    private readonly id: string,
    private readonly deps: FeedDeps,
    private readonly onError: (error: unknown) => void
  ) {}

  /** Looks now; a call during a refresh makes it look once more after it (changes coalesce). */
  refresh(): void {
    if (this.running) {
      this.again = true
      return
    }
    this.running = (async () => {
      do {
        this.again = false
        try {
          await this.once()
        } catch (error) {
          this.onError(error)
        }
      } while (this.again && this.subscribers.size > 0)
    })().finally(() => (this.running = undefined))
  }

  private async once(): Promise<void> {
    if (this.subscribers.size === 0) return
    const from = Math.min(...[...this.subscribers].map((s) => s.cursor))
    const outbox = await OutboxRepository.forUpload(this.deps.db, this.id, from, OUTBOX_BATCH)
    const row = await this.deps.uploads.findById(this.id)
    if (!row) {
      for (const subscriber of this.subscribers) subscriber.end()
      return
    }
    const jobs = (await this.deps.jobs.forUpload(this.id)).map(jobView)
    for (const subscriber of this.subscribers) subscriber.deliver(outbox, row, jobs)
    if (outbox.length === OUTBOX_BATCH) this.again = true
  }
}

export class UploadEventFeeds {
  private readonly feeds = new Map<string, UploadFeed>()
  private readonly poller: NodeJS.Timeout

  constructor(
    private readonly deps: FeedDeps,
    private readonly changes: UploadChanges | undefined,
    options: {pollMs: number; onError: (error: unknown) => void}
  ) {
    this.onError = options.onError
    changes?.onChange((id) => this.feeds.get(id)?.refresh())
    changes?.onResync(() => this.refreshAll())
    // Only while no notification can arrive (no listener, or its connection is down).
    this.poller = setInterval(() => {
      if (!this.changes?.listening) this.refreshAll()
    }, Math.max(options.pollMs, 10))
    this.poller.unref()
  }

  private readonly onError: (error: unknown) => void

  /** Adds a stream to its upload's feed and looks at once (its first status, and any replay). */
  subscribe(uploadId: string, subscriber: StreamSubscriber): () => void {
    let feed = this.feeds.get(uploadId)
    if (!feed) {
      feed = new UploadFeed(uploadId, this.deps, this.onError)
      this.feeds.set(uploadId, feed)
    }
    feed.subscribers.add(subscriber)
    feed.refresh()
    return () => {
      feed.subscribers.delete(subscriber)
      if (feed.subscribers.size === 0 && this.feeds.get(uploadId) === feed) this.feeds.delete(uploadId)
    }
  }

  /** Open streams on this node (for tests and metrics). */
  get streams(): number {
    let n = 0
    for (const feed of this.feeds.values()) n += feed.subscribers.size
    return n
  }

  /** Ends every open stream (the node is shutting down). */
  close(): void {
    clearInterval(this.poller)
    for (const feed of [...this.feeds.values()]) for (const subscriber of [...feed.subscribers]) subscriber.end()
  }

  private refreshAll(): void {
    for (const feed of this.feeds.values()) feed.refresh()
  }
}
