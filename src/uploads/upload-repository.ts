/**
 * The uploads table as the upload's life uses it: creation, progress, completion (with its
 * upload.completed event, through OutboxRepository), expiry, lookups and listings for both APIs.
 * The other statements on the table stay with what they serve (docs/ARCHITECTURE.md lists
 * them): the media pipeline's moves (media/media-repository.ts), retention's deletes, the
 * webhook bodies' reads and the gauges' counts.
 */
import {In, IsNull, type DataSource, type EntityManager} from 'typeorm'
import {OutboxRepository} from '../events/outbox-repository.js'
import {UploadEntity, type UploadRecord} from '../db/entities/upload.js'
import type {UploadCompleted} from '../events/event-schemas.js'
import {SCHEMA_VERSION} from '../events/event-schemas.js'
import {inFlightRefusal, type InFlightQuota, type InFlightUsage} from './caller-limits.js'
import {UploadIdentities, type UploadIdentity} from './upload-identities.js'
import {uploadRecord, UploadRowReads, type RawUploadRow} from './upload-row-reads.js'
import {UploadStatus} from './upload-status.js'

export interface UploadProgress {
  bytesReceived: number
  expiresAt: Date | null
}

/** The shape of every upload id this server hands out (hex from tus, or a few more characters). */
export const isUploadId = (id: string): boolean => /^[A-Za-z0-9_-]{1,128}$/.test(id)

/** A new row: the concatenation and checksum fields default to null. */
export type NewUpload = Omit<UploadRecord, 'createdAt' | 'updatedAt' | 'uploadConcat' | 'concatParts' | 'unverifiedFrom' | 'caller'> &
  Partial<Pick<UploadRecord, 'uploadConcat' | 'concatParts' | 'caller'>>

/** The fields a client's creation gives; everything else starts as a new upload's does (nothing received, no digests, no failure). */
export type CreatedUpload = Pick<NewUpload, 'id' | 'owner' | 'filename' | 'filetype' | 'metadata' | 'size' | 'nodeId' | 'expiresAt'> &
  Partial<Pick<NewUpload, 'caller' | 'uploadConcat' | 'concatParts'>>

/** A row for an upload just created: `uploading`, at offset 0. */
export function newUpload(fields: CreatedUpload): NewUpload {
  return {bytesReceived: 0, status: UploadStatus.Uploading, sha256: null, md5: null, failureReason: null, completedAt: null, ...fields}
}

export interface UploadListQuery {
  /** null: uploads without an owner; absent: any owner (the admin API). */
  owner?: string | null
  status?: UploadStatus
  /** Created at or after this instant. */
  since?: Date
  /** Partial uploads (tus concatenation) too: an operator sees every row. */
  includePartials?: boolean
  limit: number
  /** Opaque position from a previous page: the last row's (created_at, id). */
  after?: {createdAt: Date; id: string}
}

export class UploadRepository {
  private readonly reads: UploadRowReads
  private readonly identities = new UploadIdentities((id) => this.reads.load(id))

  constructor(
    private readonly db: DataSource,
    /** Checked on every insert that names its caller (off by default: tests, tools). */
    private readonly quota: InFlightQuota = {uploads: 0, bytes: 0}
  ) {
    this.reads = new UploadRowReads(db)
  }

  /** A new upload; past its caller's in-flight quota, TooManyRequests (429) and no row. */
  async insert(record: NewUpload): Promise<UploadRecord> {
    if (record.caller && (this.quota.uploads > 0 || this.quota.bytes > 0)) {
      const result = await this.insertWithinQuota({...record, caller: record.caller}, this.quota)
      if ('refused' in result) throw inFlightRefusal(result.refused, this.quota)
      return result.row
    }
    const now = new Date()
    const row: UploadRecord = {uploadConcat: null, concatParts: null, unverifiedFrom: null, caller: null, ...record, createdAt: now, updatedAt: now}
    await this.db.getRepository(UploadEntity).insert(row)
    this.identities.remember(row)
    return row
  }

  /**
   * Inserts the row only if its caller stays within `quota` (unfinished, unexpired uploads and
   * their declared bytes; a deferred length counts the bytes received). One statement: the count
   * and the insert share a snapshot, so creations of one caller running at the same moment do
   * not see each other and may overshoot by at most their number (bounded by the pool size).
   * Returns the row, or what the caller had in flight when refused.
   */
  async insertWithinQuota(record: NewUpload & {caller: string}, quota: InFlightQuota): Promise<{row: UploadRecord} | {refused: InFlightUsage}> {
    const now = new Date()
    const row: UploadRecord = {uploadConcat: null, concatParts: null, unverifiedFrom: null, ...record, createdAt: now, updatedAt: now}
    const [result] = (await this.db.query(
      `WITH usage AS (
         SELECT count(*)::int AS uploads, COALESCE(sum(COALESCE(size, bytes_received)), 0)::bigint AS bytes
         FROM uploads WHERE caller = $1 AND status = 'uploading' AND (expires_at IS NULL OR expires_at > now())
       ), inserted AS (
         INSERT INTO uploads (id, owner, caller, filename, filetype, metadata, size, bytes_received, status, node_id, sha256, md5,
                              failure_reason, expires_at, completed_at, upload_concat, concat_parts, created_at, updated_at)
         SELECT $2, $3, $1, $4, $5, $6::jsonb, $7::bigint, $8::bigint, $9, $10, $11, $12, $13, $14::timestamptz, $15::timestamptz, $16,
                CASE WHEN $17::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text($17::jsonb)) END, $18::timestamptz, $18::timestamptz
         FROM usage
         WHERE ($19::int = 0 OR usage.uploads < $19::int) AND ($20::bigint = 0 OR usage.bytes + COALESCE($7::bigint, 0) <= $20::bigint)
         RETURNING id
       )
       SELECT usage.uploads, usage.bytes::text AS bytes, (SELECT count(*) FROM inserted)::int AS inserted FROM usage`,
      [
        row.caller, row.id, row.owner, row.filename, row.filetype, JSON.stringify(row.metadata), row.size, row.bytesReceived, row.status, row.nodeId,
        row.sha256, row.md5, row.failureReason, row.expiresAt?.toISOString() ?? null, row.completedAt?.toISOString() ?? null, row.uploadConcat,
        row.concatParts ? JSON.stringify(row.concatParts) : null, now.toISOString(), quota.uploads, quota.bytes,
      ]
    )) as Array<{uploads: number; bytes: string; inserted: number}>
    if (result!.inserted === 1) return {row: (this.identities.remember(row), row)}
    return {refused: {uploads: Number(result!.uploads), bytes: Number(result!.bytes)}}
  }

  /** null for an id that no upload could have (no query: a NUL byte would make PostgreSQL fail). */
  async findById(id: string): Promise<UploadRecord | null> {
    if (!isUploadId(id)) return null
    const row = await this.reads.load(id)
    if (row) this.identities.remember(row)
    return row
  }

  /** Who owns the upload, which node holds it, its concatenation role (UploadIdentities: usually no query). */
  async identity(id: string): Promise<UploadIdentity | null> {
    if (!isUploadId(id)) return null
    return this.identities.of(id)
  }

  /** False when the upload is no longer receiving (completed, expired, terminated): nothing changed. */
  async recordProgress(id: string, progress: UploadProgress): Promise<boolean> {
    const result = await this.db
      .getRepository(UploadEntity)
      .update({id, status: UploadStatus.Uploading}, {...progress, unverifiedFrom: null, updatedAt: new Date()})
    return (result.affected ?? 0) > 0
  }

  /**
   * Progress of many requests at once (progress checkpoints), one statement: each offset only
   * moves forward (null: leave it, e.g. while a checksummed append is unverified), each expiry
   * moves on. Returns the ids still receiving; the others (completed, expired, terminated) are
   * left as they were.
   */
  async checkpoints(batch: readonly {id: string; bytesReceived: number | null; expiresAt: Date | null}[]): Promise<Set<string>> {
    const ids = batch.filter((c) => isUploadId(c.id))
    if (ids.length === 0) return new Set()
    const rows = (await this.db.query(
      `UPDATE uploads AS u
         SET bytes_received = CASE WHEN c.bytes IS NULL THEN u.bytes_received ELSE GREATEST(u.bytes_received, c.bytes) END,
             expires_at = c.expires_at, updated_at = $4::timestamptz
       FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS c(id, bytes, expires_at)
       WHERE u.id = c.id AND u.status = 'uploading'
       RETURNING u.id`,
      [ids.map((c) => c.id), ids.map((c) => c.bytesReceived), ids.map((c) => c.expiresAt?.toISOString() ?? null), new Date().toISOString()]
    )) as Array<{id: string}> | [Array<{id: string}>, number]
    return new Set(updatedRows(rows).map((r) => r.id))
  }

  /** Bytes past `offset` are unverified until the append's checksum is checked (null: none). */
  async setUnverifiedFrom(id: string, offset: number | null): Promise<void> {
    await this.db.getRepository(UploadEntity).update({id}, {unverifiedFrom: offset})
  }

  async declareSize(id: string, size: number): Promise<void> {
    await this.db.getRepository(UploadEntity).update({id, size: IsNull()}, {size, updatedAt: new Date()})
  }

  /**
   * Moves an upload from uploading to completed and, unless it is a partial upload (tus
   * concatenation: only the final one is announced), writes its upload.completed event: one
   * statement (the UPDATE and the outbox INSERT in one WITH, atomic as a transaction but one
   * round trip instead of four; the event is built from the row the UPDATE returns). Returns
   * what it completed, or null when the upload already was (completion is idempotent: a retried
   * final request or a recovery sweep changes nothing).
   */
  async complete(id: string, digests: {sha256: string; md5: string}): Promise<{row: UploadRecord; event: UploadCompleted | null} | null> {
    const now = new Date().toISOString()
    const [raw] = (await this.db.query(
      `WITH done AS (
         UPDATE uploads SET status = $2, sha256 = $3, md5 = $4, completed_at = $5::timestamptz, updated_at = $5::timestamptz, expires_at = NULL
         WHERE id = $1 AND status = $6 RETURNING *
       ), announced AS (
         INSERT INTO outbox (topic, upload_id, payload, created_at, attempts)
         SELECT 'upload.completed', d.id, jsonb_build_object(
                  'schemaVersion', $7::int, 'type', 'upload.completed', 'uploadId', d.id, 'nodeId', d.node_id,
                  'owner', d.owner, 'filename', d.filename, 'filetype', d.filetype, 'size', COALESCE(d.size, d.bytes_received),
                  'sha256', d.sha256, 'md5', d.md5, 'completedAt', $8::text),
                now(), 0
         FROM done d WHERE d.upload_concat IS DISTINCT FROM 'partial'
         RETURNING payload
       )
       SELECT done.*, (SELECT payload FROM announced) AS completed_event FROM done`,
      [id, UploadStatus.Completed, digests.sha256, digests.md5, now, UploadStatus.Uploading, SCHEMA_VERSION, now]
    )) as Array<RawUploadRow & {completed_event: UploadCompleted | null}>
    if (!raw) return null
    // The event is the one the statement wrote (a partial upload's is none): not spelled twice.
    return {row: uploadRecord(raw), event: raw.completed_event}
  }

  findByIds(ids: readonly string[]): Promise<UploadRecord[]> {
    return this.db.getRepository(UploadEntity).findBy({id: In(ids.filter(isUploadId))})
  }

  async markFailed(id: string, reason: string): Promise<void> {
    await this.db
      .getRepository(UploadEntity)
      .update({id, status: UploadStatus.Uploading}, {status: UploadStatus.Failed, failureReason: reason, updatedAt: new Date()})
  }

  /**
   * An upload still arriving refused for what it holds (not audio or video, too long): failed
   * with the reason, announced as upload.failed, in one transaction. False when it is no
   * longer arriving (completed meanwhile: then it is judged whole, as any other).
   */
  async refuseArriving(id: string, reason: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const result = await tx
        .createQueryBuilder()
        .update(UploadEntity)
        .set({status: UploadStatus.Failed, failureReason: reason, expiresAt: null, updatedAt: new Date()})
        .where('id = :id AND status = :status', {id, status: UploadStatus.Uploading})
        .execute()
      if (!result.affected) return false
      await this.enqueueEvent(tx, 'upload.failed', id, {schemaVersion: SCHEMA_VERSION, type: 'upload.failed', uploadId: id, reason, at: new Date().toISOString()})
      return true
    })
  }

  /** Final uploads (tus concatenation) on this node still waiting to be assembled. */
  findPendingFinals(nodeId: string, partId?: string): Promise<UploadRecord[]> {
    const qb = this.db
      .getRepository(UploadEntity)
      .createQueryBuilder('u')
      .where(`u.status = :status AND u.node_id = :nodeId AND u.upload_concat LIKE 'final;%'`, {status: UploadStatus.Uploading, nodeId})
    if (partId) qb.andWhere(':partId = ANY(u.concat_parts)', {partId})
    return qb.limit(100).getMany()
  }

  /** Deletes an upload that never finished (its creation failed): true when there was one. */
  async discardUnfinished(id: string): Promise<boolean> {
    const result = await this.db.getRepository(UploadEntity).delete({id, status: UploadStatus.Uploading})
    return (result.affected ?? 0) > 0
  }

  async markGone(id: string, status: typeof UploadStatus.Expired | typeof UploadStatus.Terminated): Promise<void> {
    await this.db
      .getRepository(UploadEntity)
      .update({id}, {status, expiresAt: null, updatedAt: new Date()})
  }

  /** Marks an upload expired if it still is past its expiry (a request may just have moved it). */
  async expireIfDue(id: string, now: Date): Promise<boolean> {
    const result = await this.db
      .createQueryBuilder()
      .update(UploadEntity)
      .set({status: UploadStatus.Expired, expiresAt: null, updatedAt: now})
      .where('id = :id AND status = :status AND expires_at < :now', {id, status: UploadStatus.Uploading, now})
      .execute()
    return (result.affected ?? 0) > 0
  }

  /** Unfinished final uploads, on any node, that list partial upload `partId`. */
  findPendingFinalsListing(partId: string): Promise<UploadRecord[]> {
    return this.db
      .getRepository(UploadEntity)
      .createQueryBuilder('u')
      .where(`u.status = :status AND u.upload_concat LIKE 'final;%' AND :partId = ANY(u.concat_parts)`, {status: UploadStatus.Uploading, partId})
      .limit(100)
      .getMany()
  }

  /** Unfinished uploads held by this node, past their expiry, oldest first. */
  findExpired(nodeId: string, now: Date, limit: number): Promise<UploadRecord[]> {
    return this.db
      .getRepository(UploadEntity)
      .createQueryBuilder('u')
      .where('u.status = :status AND u.node_id = :nodeId AND u.expires_at < :now', {status: UploadStatus.Uploading, nodeId, now})
      .orderBy('u.expires_at', 'ASC')
      .limit(limit)
      .getMany()
  }

  /** Uploads whose bytes all arrived but whose completion did not commit (a crash in between). */
  findStrandedCompletions(nodeId: string, limit: number): Promise<UploadRecord[]> {
    return this.db
      .getRepository(UploadEntity)
      .createQueryBuilder('u')
      .where('u.status = :status AND u.node_id = :nodeId AND u.size IS NOT NULL AND u.bytes_received = u.size', {status: UploadStatus.Uploading, nodeId})
      .limit(limit)
      .getMany()
  }

  list(query: UploadListQuery): Promise<UploadRecord[]> {
    // Partial uploads (tus concatenation) are pieces of another upload, not uploads of their own.
    const qb = this.db.getRepository(UploadEntity).createQueryBuilder('u').where(query.includePartials ? 'TRUE' : `u.upload_concat IS DISTINCT FROM 'partial'`)
    if (query.owner !== undefined) {
      if (query.owner === null) qb.andWhere('u.owner IS NULL')
      else qb.andWhere('u.owner = :owner', {owner: query.owner})
    }
    if (query.status) qb.andWhere('u.status = :status', {status: query.status})
    if (query.since) qb.andWhere('u.created_at >= :since', {since: query.since})
    if (query.after) {
      qb.andWhere('(u.created_at, u.id) < (:afterCreated, :afterId)', {afterCreated: query.after.createdAt, afterId: query.after.id})
    }
    return qb.orderBy('u.created_at', 'DESC').addOrderBy('u.id', 'DESC').limit(query.limit).getMany()
  }

  private async enqueueEvent(tx: EntityManager, topic: string, uploadId: string, payload: object): Promise<void> {
    await OutboxRepository.append(tx, [{topic, uploadId, payload}])
  }

}

/** TypeORM answers an UPDATE … RETURNING with [rows, count] on pg, and with the rows alone on some drivers. */
function updatedRows<T>(result: T[] | [T[], number]): T[] {
  return Array.isArray(result[0]) ? (result[0] as T[]) : (result as T[])
}
