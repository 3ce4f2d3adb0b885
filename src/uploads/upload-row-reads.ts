/**
 * Reads of upload rows by id, coalesced: the reads asked for while the pool is busy go as one
 * `SELECT … WHERE id = ANY($1)`, with at most a few such statements in flight. 10 000 PATCHes
 * that start within a second (phones reconnecting) cost a handful of statements, not 20 000
 * queued for a pool of 20 (each waiting up to the pool timeout, then 503). A read never joins a
 * statement already sent: each one sees the row as it is after the read was asked for.
 */
import type {DataSource} from 'typeorm'
import type {UploadRecord} from '../db/entities/upload.js'
import type {UploadStatus} from './upload-status.js'

/** Statements in flight at once; the rest of the reads wait for one of them to land. */
const MAX_IN_FLIGHT = 4
/** Ids per statement. */
const MAX_BATCH = 1000

interface Waiter {
  resolve: (row: UploadRecord | null) => void
  reject: (error: unknown) => void
}

export class UploadRowReads {
  private readonly waiting = new Map<string, Waiter[]>()
  private inFlight = 0
  private scheduled = false

  constructor(private readonly db: DataSource) {}

  load(id: string): Promise<UploadRecord | null> {
    return new Promise((resolve, reject) => {
      const waiters = this.waiting.get(id)
      if (waiters) waiters.push({resolve, reject})
      else this.waiting.set(id, [{resolve, reject}])
      this.schedule()
    })
  }

  /** Sends what is waiting once this tick's reads are in (several reads of one request tick coalesce too). */
  private schedule(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT) return
    this.scheduled = true
    process.nextTick(() => {
      this.scheduled = false
      this.send()
    })
  }

  private send(): void {
    while (this.waiting.size > 0 && this.inFlight < MAX_IN_FLIGHT) {
      const batch = new Map<string, Waiter[]>()
      for (const [id, waiters] of this.waiting) {
        if (batch.size >= MAX_BATCH) break
        batch.set(id, waiters)
        this.waiting.delete(id)
      }
      this.inFlight++
      void this.read(batch).finally(() => {
        this.inFlight--
        if (this.waiting.size > 0) this.schedule()
      })
    }
  }

  private async read(batch: Map<string, Waiter[]>): Promise<void> {
    try {
      const ids = [...batch.keys()]
      const rows = (await this.db.query(
        ids.length === 1 ? `SELECT * FROM uploads WHERE id = $1` : `SELECT * FROM uploads WHERE id = ANY($1::text[])`,
        [ids.length === 1 ? ids[0] : ids]
      )) as RawUploadRow[]
      const found = new Map(rows.map((raw) => [raw.id, raw]))
      for (const [id, waiters] of batch) {
        const raw = found.get(id)
        // Each caller gets its own object: a request may change the row it holds.
        for (const waiter of waiters) waiter.resolve(raw ? uploadRecord(raw) : null)
      }
    } catch (error) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error)
    }
  }
}

export interface RawUploadRow {
  id: string
  owner: string | null
  caller: string | null
  filename: string | null
  filetype: string | null
  metadata: Record<string, string | null> | string
  size: string | number | null
  bytes_received: string | number
  status: string
  node_id: string
  sha256: string | null
  md5: string | null
  failure_reason: string | null
  expires_at: Date | string | null
  created_at: Date | string
  updated_at: Date | string
  completed_at: Date | string | null
  upload_concat: string | null
  concat_parts: string[] | null
  unverified_from: string | number | null
}

const count = (value: string | number | bigint | null): number | null => (value === null ? null : Number(value))
const time = (value: Date | string | null): Date | null => (value === null ? null : value instanceof Date ? value : new Date(value))

/** A raw `uploads` row (pg or PGlite) as the entity TypeORM would build. */
/** A row as `SELECT *` (or `RETURNING *`) gives it, as the entity describes it. */
export function uploadRecord(raw: RawUploadRow): UploadRecord {
  return {
    id: raw.id,
    owner: raw.owner,
    caller: raw.caller,
    filename: raw.filename,
    filetype: raw.filetype,
    metadata: typeof raw.metadata === 'string' ? (JSON.parse(raw.metadata) as Record<string, string | null>) : {...raw.metadata},
    size: count(raw.size),
    bytesReceived: count(raw.bytes_received)!,
    status: raw.status as UploadStatus,
    nodeId: raw.node_id,
    sha256: raw.sha256,
    md5: raw.md5,
    failureReason: raw.failure_reason,
    expiresAt: time(raw.expires_at),
    createdAt: time(raw.created_at)!,
    updatedAt: time(raw.updated_at)!,
    completedAt: time(raw.completed_at),
    uploadConcat: raw.upload_concat,
    concatParts: raw.concat_parts ? [...raw.concat_parts] : null,
    unverifiedFrom: count(raw.unverified_from),
  }
}
