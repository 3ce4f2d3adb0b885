/**
 * The upload rows, seen through @tus/file-store's Configstore port: the file store keeps its
 * per-upload info (size, metadata, creation date) in PostgreSQL instead of JSON files beside
 * the bytes, so the database is the one record of every upload.
 */
import type {Configstore} from '@tus/file-store'
import {Upload} from '@tus/utils'
import type {UploadRecord} from '../db/entities/upload.js'
import {Gone, NotFound, UnsupportedMediaType} from '../errors.js'
import {currentRequest} from '../request-context.js'
import {callerOf} from './caller-limits.js'
import {decodeMetadata, describeUpload, encodeMetadata} from './metadata.js'
import {newUpload, type UploadRepository} from './upload-repository.js'
import {UploadStatus, isGone} from './upload-status.js'

/**
 * Failed before it was complete, and not a final upload (whose parts can fail it): refused for
 * what it holds (early-inspection.ts). Every later HEAD and PATCH answers 415 with the reason.
 */
export function refusedWhileArriving(row: UploadRecord): boolean {
  return row.status === UploadStatus.Failed && row.completedAt === null && !row.uploadConcat?.startsWith('final')
}

export class UploadCatalog implements Configstore {
  constructor(
    private readonly uploads: UploadRepository,
    private readonly options: {nodeId: string; expiryMs: number}
  ) {}

  async get(id: string): Promise<Upload | undefined> {
    const row = await this.uploads.findById(id)
    return row ? this.describe(row) : undefined
  }

  /** The upload a row records, as @tus/file-store keeps it; 410 for one that is gone or expired. */
  describe(row: UploadRecord): Upload {
    const id = row.id
    if (isGone(row.status)) throw new Gone(`upload ${id} has ${row.status === UploadStatus.Expired ? 'expired' : 'been terminated'}`)
    if (refusedWhileArriving(row)) throw new UnsupportedMediaType(row.failureReason ?? `upload ${id} was refused`)
    if (row.status === UploadStatus.Uploading && row.expiresAt && row.expiresAt.getTime() <= Date.now()) {
      throw new Gone(`upload ${id} has expired`)
    }
    return new Upload({
      id: row.id,
      size: row.size ?? undefined,
      offset: row.bytesReceived,
      metadata: decodeMetadata(row.metadata),
      creation_date: row.createdAt.toISOString(),
    })
  }

  /**
   * A new upload's row: one INSERT, nothing read before or after (the id was just generated; the
   * quota, when on, is checked within the same statement). Returns the row as stored.
   */
  async create(upload: Upload): Promise<UploadRecord> {
    const {filename, filetype} = describeUpload(upload.metadata)
    const expiresAt = this.options.expiryMs > 0 && upload.size !== 0 ? new Date(Date.now() + this.options.expiryMs) : null
    const context = currentRequest()
    if (context) context.uploadExpiresAt = expiresAt
    return this.uploads.insert(
      newUpload({
        id: upload.id,
        owner: context?.subject ?? null,
        caller: context ? callerOf(context) : null,
        filename,
        filetype,
        metadata: encodeMetadata(upload.metadata),
        size: upload.size ?? null,
        nodeId: this.options.nodeId,
        expiresAt,
        uploadConcat: context?.uploadConcat ?? null,
      })
    )
  }

  /**
   * The Configstore port's write. The store creates rows with create() and declares lengths
   * itself (UploadStore.declareUploadLength), so this is only for callers of the port as such.
   */
  async set(id: string, upload: Upload): Promise<void> {
    const existing = await this.uploads.findById(id)
    if (!existing) {
      await this.create(upload)
      return
    }
    if (upload.size !== undefined && existing.size === null) await this.uploads.declareSize(id, upload.size)
  }

  /**
   * Termination keeps the row (status terminated) so the id answers 410, not 404, afterwards;
   * a DELETE of an upload already gone (terminated, expired) finds it gone, as any request does.
   */
  async delete(id: string): Promise<void> {
    const row = await this.uploads.findById(id)
    if (!row) throw new NotFound(`upload ${id} not found`)
    if (isGone(row.status)) throw new Gone(`upload ${id} is gone (${row.status})`)
    await this.uploads.markGone(id, UploadStatus.Terminated)
  }
}
