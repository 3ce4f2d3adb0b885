/**
 * Limits per caller, so one client cannot starve the rest. A caller is a JWT subject, or the
 * client's address when authentication is off. Every count lives in PostgreSQL, so the limits
 * hold across the nodes of a cluster:
 * - in-flight uploads and bytes: counted from the uploads table by the insert itself
 *   (UploadRepository.insertWithinQuota);
 * - creations per minute: one atomic upsert per creation into `creation_windows`;
 * - open event streams: one row per stream in `event_streams`, with the node that holds it;
 *   rows of nodes that left the live set do not count, and each node clears its own at start.
 * Past a limit: 429 (TooManyRequests) with Retry-After and the limit's name. 0 turns a limit off.
 */
import type {DataSource} from 'typeorm'
import type {Config} from '../config/index.js'
import {TooManyRequests} from '../errors.js'
import type {RequestContext} from '../request-context.js'

/** The in-flight limits of one caller (0: that limit is off), checked by UploadRepository.insert. */
export interface InFlightQuota {
  uploads: number
  bytes: number
}

/** What the caller already had in flight when an insert was refused. */
export interface InFlightUsage {
  uploads: number
  bytes: number
}

export interface CallerLimitSettings {
  /** QUOTA_UPLOADS_IN_FLIGHT */
  uploadsInFlight: number
  /** QUOTA_BYTES_IN_FLIGHT */
  bytesInFlight: number
  /** RATE_LIMIT_CREATIONS (per minute) */
  creationsPerMinute: number
  /** SSE_MAX_PER_SUBJECT */
  streamsPerCaller: number
}

export const callerLimitSettings = (config: Pick<Config, 'quotaUploadsInFlight' | 'quotaBytesInFlight' | 'rateLimitCreations' | 'sseMaxPerSubject'>): CallerLimitSettings => ({
  uploadsInFlight: config.quotaUploadsInFlight,
  bytesInFlight: config.quotaBytesInFlight,
  creationsPerMinute: config.rateLimitCreations,
  streamsPerCaller: config.sseMaxPerSubject,
})

/** The key the limits count under; a subject and an address never collide. */
export function callerOf(context: Pick<RequestContext, 'subject' | 'clientIp'>): string {
  return context.subject !== null ? `sub:${context.subject}` : `ip:${context.clientIp ?? 'unknown'}`
}

export const inFlightQuota = (settings: CallerLimitSettings): InFlightQuota => ({uploads: settings.uploadsInFlight, bytes: settings.bytesInFlight})

/** In-flight uploads free up as they finish or expire: a client is told to come back in a minute. */
const IN_FLIGHT_RETRY_SECONDS = 60

export function inFlightRefusal(usage: InFlightUsage, quota: InFlightQuota): TooManyRequests {
  const headers = {'Retry-After': String(IN_FLIGHT_RETRY_SECONDS)}
  if (quota.uploads > 0 && usage.uploads >= quota.uploads) {
    return new TooManyRequests(`QUOTA_UPLOADS_IN_FLIGHT: at most ${quota.uploads} unfinished uploads per caller; finish or terminate one, then retry`, headers)
  }
  return new TooManyRequests(
    `QUOTA_BYTES_IN_FLIGHT: unfinished uploads of one caller may declare at most ${quota.bytes} bytes (${usage.bytes} in flight); finish or terminate one, then retry`,
    headers
  )
}

export class CallerLimits {
  constructor(
    private readonly db: DataSource,
    readonly settings: CallerLimitSettings,
    private readonly node: {id: string; ttlMs: number}
  ) {}

  /** Counts a creation in the caller's current minute; refuses past RATE_LIMIT_CREATIONS. */
  async admitCreation(caller: string): Promise<void> {
    const limit = this.settings.creationsPerMinute
    if (limit <= 0) return
    const [row] = (await this.db.query(
      `INSERT INTO creation_windows AS w (caller, window_start, creations) VALUES ($1, date_trunc('minute', now()), 1)
       ON CONFLICT (caller, window_start) DO UPDATE SET creations = w.creations + 1
       RETURNING w.creations, ceil(extract(epoch FROM w.window_start + interval '1 minute' - now()))::int AS retry_after`,
      [caller]
    )) as Array<{creations: number; retry_after: number}>
    if (row!.creations > limit) {
      throw new TooManyRequests(`RATE_LIMIT_CREATIONS: at most ${limit} uploads may be created per minute by one caller; retry later`, {
        'Retry-After': String(Math.max(1, row!.retry_after)),
      })
    }
  }

  /**
   * Records an open event stream, refused past SSE_MAX_PER_SUBJECT. Count and insert share one
   * statement (streams of one caller opening at the same moment may overshoot by their number).
   * Returns the function that records its end.
   */
  async openStream(caller: string): Promise<() => Promise<void>> {
    const limit = this.settings.streamsPerCaller
    if (limit <= 0) return async () => {}
    const [row] = (await this.db.query(
      `WITH open AS (
         SELECT count(*)::int AS n FROM event_streams s JOIN nodes n ON n.id = s.node_id
         WHERE s.caller = $1 AND n.last_seen_at > now() - ($3 || ' milliseconds')::interval
       ), inserted AS (
         INSERT INTO event_streams (caller, node_id) SELECT $1, $2 FROM open WHERE open.n < $4::int RETURNING id
       )
       SELECT (SELECT id::text FROM inserted) AS id`,
      [caller, this.node.id, String(this.node.ttlMs), limit]
    )) as Array<{id: string | null}>
    const id = row?.id
    if (!id) {
      throw new TooManyRequests(`SSE_MAX_PER_SUBJECT: at most ${limit} event streams may be open at once per caller; close one, then retry`, {'Retry-After': '10'})
    }
    let closed = false
    return async () => {
      if (closed) return
      closed = true
      await this.db.query(`DELETE FROM event_streams WHERE id = $1`, [id])
    }
  }

  /** At start: streams this node held before a restart are gone. */
  async forgetOwnStreams(): Promise<void> {
    await this.db.query(`DELETE FROM event_streams WHERE node_id = $1`, [this.node.id])
  }

  /** Housekeeping: past minutes' counters, and streams of nodes that left the live set. */
  async prune(): Promise<void> {
    await this.db.query(`DELETE FROM creation_windows WHERE window_start < now() - interval '2 minutes'`)
    await this.db.query(
      `DELETE FROM event_streams s WHERE NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = s.node_id AND n.last_seen_at > now() - ($1 || ' milliseconds')::interval)`,
      [String(this.node.ttlMs)]
    )
  }
}
