/**
 * The tus DataStore: @tus/file-store for the files, the uploads table for everything else
 * (see UploadCatalog), and a write path that hashes the bytes in the same pass that stores
 * them. Expiry is ours too: @tus/file-store counts it from creation and would delete finished
 * uploads; here an upload expires after a period without progress, and only while unfinished.
 */
import {truncate, unlink} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {FileStore} from '@tus/file-store'
import {ERRORS, type Upload} from '@tus/utils'
import {BadRequest, ChecksumMismatch, storageError, type AppError} from '../errors.js'
import {currentRequest, type RequestContext} from '../request-context.js'
import {parseUploadChecksum, RequestDigest} from './checksum.js'
import {HashingFileSink, type ChunkObserver} from './hashing-file-sink.js'
import {UploadCatalog} from './upload-catalog.js'
import {LiveHashers, type UploadHasher} from './upload-hasher.js'
import {UploadStatus} from './upload-status.js'
import type {UploadRepository} from './upload-repository.js'

export interface UploadStoreOptions {
  directory: string
  nodeId: string
  /** How long an unfinished upload may go without progress before it expires; 0: never. */
  expiryMs: number
}

export class UploadStore extends FileStore {
  private readonly hashers = new LiveHashers()

  constructor(
    private readonly uploads: UploadRepository,
    private readonly options: UploadStoreOptions
  ) {
    // Expiration stays advertised, but @tus/server's creation-based checks are off (0): the
    // catalog answers 410 for expired uploads and the expiry sweeper removes them.
    super({directory: options.directory, configstore: new UploadCatalog(uploads, options), expirationPeriodInMilliseconds: 0})
  }

  filePath(id: string): string {
    return path.join(this.options.directory, id)
  }

  override async create(upload: Upload): Promise<Upload> {
    try {
      return await super.create(upload)
    } catch (error) {
      await unlink(this.filePath(upload.id)).catch(() => {})
      throw storageError(error) ?? error
    }
  }

  /** Called when a reconciled upload turns out to hold all its bytes (see getUpload). */
  onFullyReceived?: (id: string) => Promise<unknown>

  /**
   * The upload as the protocol sees it (its offset is the file's size), after repairing what a
   * process that died mid-request left: bytes a checksum-verified append had not verified are
   * dropped; bytes that reached the file but not the row are recorded — and if they complete the
   * upload, it is completed now, since the client will take the offset as done.
   */
  override async getUpload(id: string): Promise<Upload> {
    const row = await this.uploads.findById(id)
    if (row?.unverifiedFrom != null) {
      await truncate(this.filePath(id), row.unverifiedFrom).catch(ignoreMissing)
      await this.uploads.setUnverifiedFrom(id, null)
    }
    const upload = await super.getUpload(id)
    const context = currentRequest()
    if (context) {
      context.uploadOffset = upload.offset
      context.uploadExpiresAt = row?.status === UploadStatus.Uploading ? row.expiresAt : null
    }
    if (row && row.status === UploadStatus.Uploading && upload.offset > row.bytesReceived) {
      await this.uploads.recordProgress(id, {bytesReceived: upload.offset, expiresAt: row.expiresAt})
      if (row.size !== null && upload.offset === row.size) await this.onFullyReceived?.(id)
    }
    return upload
  }

  /** `observers` see each chunk once it is on disk, after the hashers (e.g. to report progress). */
  override async write(readable: Readable, id: string, offset: number, observers: readonly ChunkObserver[] = []): Promise<number> {
    const row = await this.uploads.findById(id)
    if (!row) throw ERRORS.FILE_NOT_FOUND
    const file = this.filePath(id)
    const hasher = await this.hashers.at(id, file, offset)

    const checksum = currentRequest()?.checksum
    const digest = checksum ? new RequestDigest(checksum.expected ? [checksum.expected.algorithm] : undefined) : undefined
    const before = digest ? hasher.copy() : undefined
    if (digest) await this.uploads.setUnverifiedFrom(id, offset)

    const sink = new HashingFileSink(file, offset, [hasher, ...(digest ? [digest] : []), ...observers])
    let failure: unknown
    try {
      await pipeline(readable, sink)
    } catch (error) {
      failure = error
    }

    if (digest && checksum) {
      const rejection = failure === undefined ? checkDigest(digest, checksum) : undefined
      if (failure !== undefined || rejection) {
        // The protocol: a request whose checksum does not hold leaves the upload as it was.
        await truncate(file, offset)
        await this.uploads.setUnverifiedFrom(id, null)
        this.hashers.keep(id, before!)
        throw rejection ?? mapWriteFailure(failure)
      }
    }

    // Whatever reached the disk counts, even when the request was cut: record it.
    const finished = row.size !== null && sink.position === row.size
    const expiresAt = this.options.expiryMs > 0 && !finished ? new Date(Date.now() + this.options.expiryMs) : null
    await this.uploads.recordProgress(id, {bytesReceived: sink.position, expiresAt})
    this.hashers.keep(id, hasher)
    const context = currentRequest()
    if (context) context.uploadExpiresAt = expiresAt

    if (failure !== undefined) throw mapWriteFailure(failure)
    return sink.position
  }

  /**
   * The final digests of a fully received upload: from the hashers that took its last bytes,
   * or (after a restart between the last byte and completion) from the file.
   */
  async digests(id: string): Promise<{sha256: string; md5: string}> {
    const row = await this.uploads.findById(id)
    if (!row) throw ERRORS.FILE_NOT_FOUND
    const hasher = await this.hashers.at(id, this.filePath(id), row.size ?? row.bytesReceived)
    this.hashers.forget(id)
    return hasher.digests()
  }

  /** Hashers already holding an upload's bytes (a final upload assembled from its partials). */
  adoptHasher(id: string, hasher: UploadHasher): void {
    this.hashers.keep(id, hasher)
  }

  override async deleteExpired(): Promise<number> {
    let removed = 0
    for (;;) {
      const batch = await this.uploads.findExpired(this.options.nodeId, new Date(), 100)
      for (const row of batch) {
        await unlink(this.filePath(row.id)).catch(ignoreMissing)
        await this.uploads.markGone(row.id, 'expired')
        removed++
      }
      if (batch.length < 100) return removed
    }
  }
}

function checkDigest(digest: RequestDigest, checksum: NonNullable<RequestContext['checksum']>): AppError | undefined {
  let expected = checksum.expected
  if (!expected) {
    const trailer = checksum.fromTrailer?.()
    if (!trailer) return new BadRequest('the request announced an Upload-Checksum trailer but did not send it')
    try {
      expected = parseUploadChecksum(trailer)
    } catch (error) {
      return error as AppError
    }
  }
  return digest.matches(expected) ? undefined : new ChecksumMismatch(`the ${expected.algorithm} checksum of the request body does not match Upload-Checksum; nothing was stored`)
}

function mapWriteFailure(failure: unknown): unknown {
  if (typeof failure === 'object' && failure !== null && 'status_code' in failure) return failure
  return storageError(failure) ?? ERRORS.FILE_WRITE_ERROR
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error
}
