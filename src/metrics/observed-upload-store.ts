/**
 * The upload store, observed: counts what it creates, the bytes it writes and the uploads it
 * expires, and labels the request's log with the upload a tus POST just created. A subclass,
 * so the store itself (src/uploads/upload-store.ts) stays free of instrumentation.
 */
import type {Readable} from 'node:stream'
import type {Upload} from '@tus/utils'
import {bindUploadToRequest} from '../logger.js'
import type {ChunkObserver} from '../uploads/hashing-file-sink.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import {UploadStore, type UploadStoreOptions} from '../uploads/upload-store.js'
import type {NodeMetrics} from './node-metrics.js'

export class ObservedUploadStore extends UploadStore {
  constructor(
    private readonly rows: UploadRepository,
    options: UploadStoreOptions,
    private readonly metrics: NodeMetrics
  ) {
    super(rows, options)
  }

  override async create(upload: Upload): Promise<Upload> {
    const created = await super.create(upload)
    bindUploadToRequest(upload.id)
    this.metrics.uploadsCreated.inc()
    return created
  }

  override async write(readable: Readable, id: string, offset: number, observers: readonly ChunkObserver[] = []): Promise<number> {
    try {
      const end = await super.write(readable, id, offset, observers)
      this.metrics.bytesReceived.inc(Math.max(0, end - offset))
      return end
    } catch (error) {
      // A cut request still keeps what reached the disk (the store records it): count that.
      const row = await this.rows.findById(id).catch(() => null)
      if (row && row.bytesReceived > offset) this.metrics.bytesReceived.inc(row.bytesReceived - offset)
      throw error
    }
  }

  override async deleteExpired(): Promise<number> {
    const expired = await super.deleteExpired()
    this.metrics.uploadsExpired.inc(expired)
    return expired
  }
}
