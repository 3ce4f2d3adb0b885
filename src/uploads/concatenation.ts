/**
 * tus concatenation: partial uploads (uploaded in parallel, never announced on their own) and
 * a final upload made of them, in order. The final may be created before its partials finish
 * (concatenation-unfinished); it is assembled on this node once they all have: their bytes are
 * copied into its file and hashed in the same pass, it completes like any other upload (one
 * upload.completed event), and the partials' files, now consumed, are removed.
 */
import {randomBytes} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {rename, stat, unlink, writeFile} from 'node:fs/promises'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import type {Logger} from 'pino'
import type {UploadRecord} from '../db/entities/upload.js'
import {BadRequest, PayloadTooLarge} from '../errors.js'
import type {UploadCompletion} from './completion.js'
import {isFinal, PARTIAL} from './concat-role.js'
import {committedBytes} from './final-size-limit.js'
import {HashingFileSink} from './hashing-file-sink.js'
import {describeUpload, encodeMetadata} from './metadata.js'
import {UploadHasher} from './upload-hasher.js'
import {newUpload, type UploadRepository} from './upload-repository.js'
import {UploadStatus} from './upload-status.js'
import type {UploadStore} from './upload-store.js'


export interface FinalUploadRequest {
  /** The Upload-Concat header as received. */
  header: string
  /** The partial uploads' ids, parsed from the header, in order. */
  partIds: string[]
  metadata: Record<string, string | null> | undefined
  owner: string | null
  /** Who creates it, for the in-flight quota (uploads/caller-limits.ts). */
  caller?: string
}

export class UploadConcatenation {
  private readonly assembling = new Map<string, Promise<void>>()

  constructor(
    private readonly uploads: UploadRepository,
    private readonly store: UploadStore,
    private readonly completion: UploadCompletion,
    private readonly log: Logger,
    private readonly options: {
      nodeId: string
      maxSize: number
      /** The most partial uploads one final upload may list (MAX_CONCAT_PARTS). */
      maxParts: number
      /** A partial upload held by another node (uploads through a load balancer land anywhere). */
      openRemotePart?: (part: UploadRecord) => Promise<NodeJS.ReadableStream>
    }
  ) {
    completion.onCompleted((row) => {
      if (row.uploadConcat === PARTIAL) void this.partCompleted(row.id)
    })
  }

  /** Creates a final upload; assembles it at once if its partials are all complete. */
  async createFinal(request: FinalUploadRequest): Promise<UploadRecord> {
    if (request.partIds.length > this.options.maxParts) {
      throw new BadRequest(`Upload-Concat: final lists ${request.partIds.length} partial uploads; this server takes at most ${this.options.maxParts}`)
    }
    const parts = await this.partsInOrder(request.partIds)
    for (const [i, part] of parts.entries()) {
      const label = `partial upload ${i + 1} (${request.partIds[i]!.slice(0, 64)})`
      if (!part || part.owner !== request.owner) throw new BadRequest(`${label} was not found`)
      if (part.uploadConcat !== PARTIAL) throw new BadRequest(`${label} was not created with Upload-Concat: partial`)
      if (part.status !== UploadStatus.Uploading && part.status !== UploadStatus.Completed) throw new BadRequest(`${label} has ${part.status}`)
      if (part.status === UploadStatus.Completed && part.nodeId === this.options.nodeId && !(await this.fileExists(part.id))) {
        throw new BadRequest(`${label} was already concatenated into another upload`)
      }
    }
    const known = parts.every((p) => p!.size !== null)
    const size = known ? parts.reduce((sum, p) => sum + p!.size!, 0) : null
    // Lengths still deferred count with what their partials hold so far (see final-size-limit.ts).
    const committed = parts.reduce((sum, p) => sum + committedBytes(p), 0)
    if (this.options.maxSize > 0 && committed > this.options.maxSize) {
      const what = size !== null ? `add up to ${size} bytes` : `already hold ${committed} bytes`
      throw new PayloadTooLarge(`the partial uploads ${what}, over the maximum upload size of ${this.options.maxSize}`)
    }
    const {filename, filetype} = describeUpload(request.metadata)
    const row = await this.uploads.insert(
      newUpload({
        id: randomBytes(16).toString('hex'),
        owner: request.owner,
        caller: request.caller ?? null,
        filename,
        filetype,
        metadata: encodeMetadata(request.metadata),
        size,
        nodeId: this.options.nodeId,
        expiresAt: null,
        uploadConcat: request.header,
        concatParts: request.partIds,
      })
    )
    if (parts.every((p) => p!.status === UploadStatus.Completed)) void this.assemble(row.id)
    return row
  }

  /**
   * How much of a final upload exists so far: once assembled, all of it; before, its partials'
   * bytes in order (the finished ones, then the received prefix of the first unfinished one,
   * so the offset only grows). The length once every partial's length is known.
   */
  async progressOf(final: UploadRecord): Promise<{offset: number; length: number | null}> {
    if (final.completedAt !== null) return {offset: final.size ?? final.bytesReceived, length: final.size ?? final.bytesReceived}
    const parts = await this.partsInOrder(final.concatParts ?? [])
    let offset = 0
    for (const part of parts) {
      if (!part || (part.status !== UploadStatus.Uploading && part.status !== UploadStatus.Completed)) break
      offset += part.status === UploadStatus.Completed ? part.size! : part.bytesReceived
      if (part.status !== UploadStatus.Completed) break
    }
    const length = final.size ?? (parts.every((p) => p?.size != null) ? parts.reduce((sum, p) => sum + p!.size!, 0) : null)
    return {offset, length}
  }

  /** Assembles, at most once at a time per upload, a final upload whose partials are complete. */
  assemble(finalId: string): Promise<void> {
    let running = this.assembling.get(finalId)
    if (!running) {
      running = this.assembleOnce(finalId)
        .catch((error: unknown) => this.log.error({uploadId: finalId, err: error}, 'could not assemble a final upload; will retry at the next sweep'))
        .finally(() => this.assembling.delete(finalId))
      this.assembling.set(finalId, running)
    }
    return running
  }

  /** Final uploads whose partials all finished while no assembly ran (e.g. across a restart). */
  async recoverStranded(): Promise<void> {
    for (const final of await this.uploads.findPendingFinals(this.options.nodeId)) await this.assemble(final.id)
  }

  private async partCompleted(partId: string): Promise<void> {
    for (const final of await this.uploads.findPendingFinals(this.options.nodeId, partId)) await this.assemble(final.id)
  }

  private async assembleOnce(finalId: string): Promise<void> {
    const final = await this.uploads.findById(finalId)
    if (!final || final.status !== UploadStatus.Uploading || !isFinal(final) || final.nodeId !== this.options.nodeId) return
    const parts = await this.partsInOrder(final.concatParts ?? [])
    const missing = parts.findIndex((p) => !p || (p.status !== UploadStatus.Uploading && p.status !== UploadStatus.Completed))
    if (missing >= 0) {
      await this.uploads.markFailed(finalId, `partial upload ${missing + 1} is gone (${parts[missing]?.status ?? 'deleted'}); upload the file again`)
      return
    }
    if (parts.some((p) => p!.status !== UploadStatus.Completed)) return

    const size = parts.reduce((sum, p) => sum + p!.size!, 0)
    if (this.options.maxSize > 0 && size > this.options.maxSize) {
      await this.uploads.markFailed(finalId, `its partial uploads add up to ${size} bytes, over the maximum upload size (${this.options.maxSize} bytes); upload the file again in smaller parts`)
      return
    }
    if (final.size === null) await this.uploads.declareSize(finalId, size)
    const target = this.store.filePath(finalId)
    const temporary = `${target}.assembling`
    await writeFile(temporary, '')
    const hasher = UploadHasher.fresh(size)
    const sink = new HashingFileSink(temporary, 0, [hasher])
    const local = parts.filter((p) => p!.nodeId === this.options.nodeId).map((p) => this.store.filePath(p!.id))
    try {
      await pipeline(Readable.from(this.partBytes(parts as UploadRecord[])), sink)
      if (sink.position !== size) throw new Error(`assembled ${sink.position} bytes, expected ${size}`)
      await rename(temporary, target)
    } catch (error) {
      await unlink(temporary).catch(() => {})
      throw error
    }
    await this.uploads.recordProgress(finalId, {bytesReceived: size, expiresAt: null})
    this.store.adoptHasher(finalId, hasher)
    await this.completion.complete(finalId, size)
    // The partials are consumed: their bytes now live in the final upload.
    await Promise.all(local.map((p) => unlink(p).catch(() => {})))
    this.log.info({uploadId: finalId, parts: parts.length, size}, 'final upload assembled')
  }

  private async *partBytes(parts: UploadRecord[]): AsyncGenerator<Buffer> {
    for (const part of parts) {
      const source =
        part.nodeId === this.options.nodeId
          ? createReadStream(this.store.filePath(part.id), {highWaterMark: 1 << 20})
          : await this.openRemote(part)
      for await (const chunk of source) yield chunk as Buffer
    }
  }

  private openRemote(part: UploadRecord): Promise<NodeJS.ReadableStream> {
    if (!this.options.openRemotePart) throw new Error(`partial upload ${part.id} is on node ${part.nodeId}, and this node cannot reach peers`)
    return this.options.openRemotePart(part)
  }

  private async partsInOrder(ids: readonly string[]): Promise<Array<UploadRecord | undefined>> {
    const rows = new Map((await this.uploads.findByIds(ids)).map((r) => [r.id, r]))
    return ids.map((id) => rows.get(id))
  }

  private fileExists(id: string): Promise<boolean> {
    return stat(this.store.filePath(id)).then(
      () => true,
      () => false
    )
  }
}

