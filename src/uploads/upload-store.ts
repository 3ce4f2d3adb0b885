/**
 * The tus DataStore: @tus/file-store for the files, the uploads table for everything else
 * (see UploadCatalog), and a write path that hashes the bytes in the same pass that stores
 * them. Expiry is ours too: @tus/file-store counts it from creation and would delete finished
 * uploads; here an upload expires after a period without progress, and only while unfinished.
 */
import {stat, truncate, unlink, writeFile} from 'node:fs/promises'
import type {Readable, Writable} from 'node:stream'
import type {Logger} from 'pino'
import {finished, pipeline} from 'node:stream/promises'
import {FileStore} from '@tus/file-store'
import ms from 'ms'
import {ERRORS, type Upload} from '@tus/utils'
import type {UploadRecord} from '../db/entities/upload.js'
import {BadRequest, ChecksumMismatch, databaseUnavailable, Gone, RequestTimeout, storageError, UnsupportedMediaType, type AppError} from '../errors.js'
import {currentRequest, type ForwardedBodyCheck, type RequestContext} from '../request-context.js'
import {parseUploadChecksum, RequestDigest, type ChecksumAlgorithm} from './checksum.js'
import {FinalSizeLimit, type PartialGuard} from './final-size-limit.js'
import {HashingFileSink, type ChunkObserver} from './hashing-file-sink.js'
import {CheckpointBatcher, checkpointPolicy, ProgressCheckpoints, type CheckpointPolicy} from './progress-checkpoints.js'
import {refusedWhileArriving, UploadCatalog} from './upload-catalog.js'
import {EarlyInspection, type HeadInspector} from './early-inspection.js'
import {PARTIAL} from './concat-role.js'
import {HashThreadLost} from './hash-threads.js'
import {LiveHashers, UploadHasher} from './upload-hasher.js'
import type {UploadLocker} from './upload-locker.js'
import {uploadFileIn} from './upload-files.js'
import {UploadStatus} from './upload-status.js'
import type {UploadRepository} from './upload-repository.js'
import {withTimeout} from '../timeouts.js'

export interface UploadStoreOptions {
  directory: string
  nodeId: string
  /** How long an unfinished upload may go without progress before it expires; 0: never. */
  expiryMs: number
  /** A request body silent this long is ended (what reached the file is kept); 0: never. */
  idleTimeoutMs: number
  /** MAX_UPLOAD_SIZE, for the sum of a final upload's partials (0: none). */
  maxSize: number
  /** The lock every write to an upload takes; the expiry sweep leaves locked uploads alone. */
  locker: UploadLocker
  /** Progress checkpoints during one request (default: every 3 s or 64 MiB, more often for a short expiry). */
  checkpoints?: CheckpointPolicy
  /** Looks at an upload's first MiB while the rest arrives (media's early probe, from node.ts); unset: none. */
  inspectHead?: HeadInspector
  /** For what goes wrong in the background (an inspection that failed). */
  log?: Logger
}

export class UploadStore extends FileStore {
  private readonly hashers = new LiveHashers()
  private readonly catalog: UploadCatalog
  /** Uploads a request of this process is writing right now: its body, and the write's end. */
  private readonly receiving = new Map<string, Receiving>()
  /** Every streaming request's checkpoints, recorded together (one statement per tick). */
  private readonly checkpoints: CheckpointBatcher
  readonly finalSizeLimit: FinalSizeLimit
  /** How to stop each request of this process writing an upload right now (a refusal stops it). */
  private readonly stops = new Map<string, (error: AppError) => void>()
  private readonly inspection: EarlyInspection | undefined

  constructor(
    private readonly uploads: UploadRepository,
    private readonly options: UploadStoreOptions
  ) {
    // Expiration stays advertised, but @tus/server's creation-based checks are off (0): the
    // catalog answers 410 for expired uploads and the expiry sweeper removes them.
    const catalog = new UploadCatalog(uploads, options)
    super({directory: options.directory, configstore: catalog, expirationPeriodInMilliseconds: 0})
    this.catalog = catalog
    this.checkpoints = new CheckpointBatcher(options.checkpoints ?? checkpointPolicy(options.expiryMs), (batch) => uploads.checkpoints(batch))
    this.finalSizeLimit = new FinalSizeLimit(uploads, options.maxSize)
    const inspect = options.inspectHead
    this.inspection = inspect && new EarlyInspection({inspect, refuse: (id, reason) => this.refuseEarly(id, reason), log: options.log})
  }

  /**
   * Refuses an upload still arriving for what its first bytes hold: the row fails with the
   * reason (unless it completed meanwhile), the request sending it now stops with 415, and its
   * file goes. The file is opened r+ by every write, so a write that follows cannot bring it back.
   */
  private async refuseEarly(id: string, reason: string): Promise<void> {
    if (!(await this.uploads.refuseArriving(id, reason))) return
    this.stops.get(id)?.(new UnsupportedMediaType(reason))
    this.hashers.forget(id)
    await unlink(this.filePath(id)).catch(ignoreMissing)
    this.options.log?.info({uploadId: id, reason}, 'upload refused while arriving')
  }

  filePath(id: string): string {
    return uploadFileIn(this.options.directory, id)
  }

  /**
   * What @tus/file-store's create does (an empty file, then the record), with the record one
   * INSERT. A body sent with the creation is written under the same lock: the row just made
   * serves it, unread.
   */
  override async create(upload: Upload): Promise<Upload> {
    const file = this.filePath(upload.id)
    try {
      await writeFile(file, '')
      const row = await this.catalog.create(upload)
      const context = currentRequest()
      if (context) context.uploadUnderLock = row
    } catch (error) {
      await unlink(file).catch(() => {})
      throw storageError(error) ?? error
    }
    upload.storage = {type: 'file', path: file}
    return upload
  }

  /** Called when a reconciled upload turns out to hold all its bytes (see getUpload). */
  onFullyReceived?: (id: string, size: number) => Promise<unknown>

  /**
   * The upload as the protocol sees it (its offset is the file's size). @tus/server calls it
   * under the upload's lock before every HEAD, PATCH and DELETE, so it is also where an
   * interrupted write is repaired, in one named step (repairInterruptedWrite); a read that must
   * not change anything (a HEAD while a writer holds the lock, a write of this process in
   * flight) skips it.
   */
  override async getUpload(id: string): Promise<Upload> {
    // While a request of ours writes the upload, nothing died: its file runs ahead of the row
    // (checkpoints lag), and unverified bytes are still being checked. Repair only the rest.
    // A HEAD that found the lock held (a writer in flight) repairs nothing either.
    const context = currentRequest()
    // A writer whose body is over (its client went away, or sent it all) is only storing what
    // arrived and recording it: a HEAD waits for that, so the offset it answers is the one the
    // client's resume must send (not a moment of the write, which the resume would find 409).
    // A writer still receiving writes what it has gathered first, so the HEAD counts every byte
    // that arrived before it (the client's next resume sends from there).
    // A body forwarded by another node is verified at its end, so its bytes count nowhere until
    // then; when its client went away, the forwarder's word of the cut may still be on its way
    // (the client's HEAD can come first, by another node): the HEAD gives it a moment to arrive.
    const writer = context?.readsUnlocked ? this.receiving.get(id) : undefined
    if (writer && (writer.source.destroyed || writer.source.readableEnded)) await writer.done.catch(() => {})
    else if (writer?.forwarded) await withTimeout(writer.done, FORWARDED_CUT_GRACE_MS).catch(() => {})
    else if (writer) await writer.sink?.flush().catch(() => {})
    const repair = !this.receiving.has(id) && !context?.readsUnlocked
    const row = await this.uploads.findById(id)
    const repaired = repair && row ? await this.repairInterruptedWrite(row) : false
    // A refusal between the read and the stat took the file: answer its reason, as the next request would.
    const upload = await this.fromRow(row).catch((error: unknown) => this.refusedMeanwhile(id, error))
    // Bytes a checksummed append has not verified yet are not the upload's (yet).
    if (!repair && row?.unverifiedFrom != null && upload.offset > row.unverifiedFrom) upload.offset = row.unverifiedFrom
    if (context) {
      context.uploadOffset = upload.offset
      context.uploadExpiresAt = row?.status === UploadStatus.Uploading ? row.expiresAt : null
    }
    // @tus/server writes (PATCH) right after this, under the same lock: the row needs no second read.
    if (context) context.uploadUnderLock = repaired ? undefined : (row ?? undefined)
    return upload
  }

  /**
   * Repairs what a process that died mid-request left, under the upload's lock: bytes a
   * checksum-verified append had not verified are dropped; bytes that reached the file but not
   * the row are recorded — and if they complete the upload, it is completed now, since the
   * client will take the offset as done. True when it changed the row (which is then stale).
   */
  private async repairInterruptedWrite(row: UploadRecord): Promise<boolean> {
    const id = row.id
    let repaired = false
    if (row.unverifiedFrom != null) {
      await truncate(this.filePath(id), row.unverifiedFrom).catch(ignoreMissing)
      await this.uploads.setUnverifiedFrom(id, null)
      repaired = true
    }
    // An upload no longer receiving, or past its expiry (answered 410 next), keeps its row as it is.
    if (row.status !== UploadStatus.Uploading || (row.expiresAt !== null && row.expiresAt.getTime() <= Date.now())) return repaired
    const onDisk = await stat(this.filePath(id)).then((stats) => stats.size, () => undefined)
    if (onDisk === undefined || onDisk <= row.bytesReceived) return repaired
    await this.uploads.recordProgress(id, {bytesReceived: onDisk, expiresAt: row.expiresAt})
    if (row.size !== null && onDisk === row.size) await this.onFullyReceived?.(id, row.size)
    return true
  }

  /** What @tus/file-store's getUpload builds (row, then the file's size as the offset), from a row already read. */
  private async fromRow(row: UploadRecord | null): Promise<Upload> {
    if (!row) throw ERRORS.FILE_NOT_FOUND
    const upload = this.catalog.describe(row)
    const file = this.filePath(row.id)
    const stats = await stat(file).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? ERRORS.FILE_NO_LONGER_EXISTS : error
    })
    if (stats.isDirectory()) throw ERRORS.FILE_NOT_FOUND
    upload.offset = stats.size
    upload.storage = {type: 'file', path: file}
    return upload
  }

  /** The row getUpload read for this request under the upload's lock, once; else undefined. */
  private rowUnderLock(id: string): UploadRecord | undefined {
    const context = currentRequest()
    const row = context?.uploadUnderLock
    if (context) context.uploadUnderLock = undefined
    return row?.id === id ? row : undefined
  }

  /** One UPDATE of the row read under the lock (@tus/file-store's own would read it twice more). */
  override async declareUploadLength(id: string, length: number): Promise<void> {
    const row = this.rowUnderLock(id) ?? (await this.uploads.findById(id))
    if (!row) throw ERRORS.FILE_NOT_FOUND
    if (row.uploadConcat === PARTIAL) await this.finalSizeLimit.checkDeclared(id, length)
    if (row.size === null) await this.uploads.declareSize(id, length)
  }

  /**
   * The one place request bodies reach upload files: tus PATCH and creation-with-upload, the
   * draft endpoint. `observers` see each chunk once it is on disk, after the hashers (e.g. to
   * report progress).
   */
  override async write(readable: Readable, id: string, offset: number, observers: readonly ChunkObserver[] = []): Promise<number> {
    const row = this.rowUnderLock(id) ?? (await this.uploads.findById(id))
    if (!row) throw ERRORS.FILE_NOT_FOUND
    const guard = row.uploadConcat === PARTIAL ? await this.finalSizeLimit.guard(id, offset) : undefined
    const receiving: Receiving = {source: readable, done: Promise.resolve(), forwarded: currentRequest()?.forwardedBody !== undefined}
    const received = this.receive(readable, row, offset, {guard, observers, receiving})
    receiving.done = received
    this.receiving.set(id, receiving)
    try {
      return await received
    } catch (error) {
      return await this.refusedMeanwhile(id, error)
    } finally {
      this.receiving.delete(id)
      // The assembly checks the sum again: a final this cannot fail now still never goes over.
      await guard?.settle().catch((error: unknown) => currentRequest()?.log.warn({err: error, uploadId: id}, 'could not fail a final upload over the size limit'))
    }
  }

  private async receive(
    readable: Readable,
    row: UploadRecord,
    offset: number,
    {guard, observers, receiving}: {guard: PartialGuard | undefined; observers: readonly ChunkObserver[]; receiving: Receiving}
  ): Promise<number> {
    const id = row.id
    const file = this.filePath(id)
    const hasher = await this.hashers.at(id, file, offset, row.size)

    const {checksum, forwardedBody} = currentRequest() ?? {}
    const digest = checksum || forwardedBody ? new RequestDigest(digestAlgorithms(checksum, forwardedBody)) : undefined
    const before = digest ? hasher.copy() : undefined
    if (digest) await this.uploads.setUnverifiedFrom(id, offset)

    let sink: HashingFileSink | undefined
    const stop = (error: AppError) => sink?.destroy(error)
    const checkpoints = this.checkpointsFor(row, hasher, {unverified: digest !== undefined, guard, stop})
    // A partial upload (tus concatenation) is a piece of a file, not one: its final is judged whole.
    const inspection = row.uploadConcat === PARTIAL ? undefined : this.inspection?.watch(id, file, offset, row.size)
    sink = new HashingFileSink(file, offset, [hasher, ...(digest ? [digest] : []), checkpoints, ...(inspection ? [inspection] : []), ...observers], {
      ms: this.options.idleTimeoutMs,
      onSilence: () => stop(new RequestTimeout(`the request body sent nothing for ${ms(this.options.idleTimeoutMs, {long: true})}; what arrived is kept, resume from Upload-Offset`, {Connection: 'close'})),
    })
    receiving.sink = sink
    let failure: unknown
    this.stops.set(id, stop)
    try {
      await streamInto(readable, guard ? [guard, sink] : [sink])
    } catch (error) {
      failure = error
    } finally {
      this.stops.delete(id)
    }
    await checkpoints.stop()

    let cut = false
    if (digest) {
      const verdict = failure === undefined ? verifyBody(digest, checksum, forwardedBody) : undefined
      if (failure !== undefined || verdict?.error) {
        // The protocol: a request whose checksum does not hold leaves the upload as it was; so
        // does a forwarded body that was not sealed whole or was altered on the way.
        await truncate(file, offset).catch(ignoreMissing)
        await this.uploads.setUnverifiedFrom(id, null)
        this.hashers.keep(id, before!)
        throw verdict?.error ?? mapWriteFailure(failure)
      }
      cut = verdict?.cut ?? false
    }

    // Whatever reached the disk counts, even when the request was cut: record it.
    const finished = row.size !== null && sink.position === row.size
    const expiresAt = this.options.expiryMs > 0 && !finished ? new Date(Date.now() + this.options.expiryMs) : null
    const recorded = await this.uploads.recordProgress(id, {bytesReceived: sink.position, expiresAt})
    this.hashers.keep(id, hasher)
    if (!recorded) await this.refuseIfGone(id)
    const context = currentRequest()
    if (context) context.uploadExpiresAt = expiresAt

    if (failure !== undefined) throw mapWriteFailure(failure)
    if (cut) throw new BadRequest('the client went away mid-request (said the node that forwarded it); what arrived is kept, resume from Upload-Offset')
    return sink.position
  }

  /**
   * Checkpoints for one request. The offset they record is what the hashers hold (on disk and
   * hashed), never the upload's full length (completing is the request's own last step), and
   * never, during a checksummed append, bytes not yet verified: then only the expiry moves.
   */
  private checkpointsFor(
    row: UploadRecord,
    hasher: UploadHasher,
    request: {unverified: boolean; guard: PartialGuard | undefined; stop: (error: AppError) => void}
  ): ProgressCheckpoints {
    // The batch lands outside this request's async context: keep its logger.
    const log = currentRequest()?.log
    return new ProgressCheckpoints(this.checkpoints, {
      progress: () => ({
        id: row.id,
        bytesReceived: request.unverified || hasher.bytes === row.size ? null : hasher.bytes,
        expiresAt: this.options.expiryMs > 0 ? new Date(Date.now() + this.options.expiryMs) : null,
      }),
      landed: async (receiving) => {
        if (!receiving) return request.stop(goneWhileReceiving(row.id))
        const over = await request.guard?.recheck(hasher.bytes)
        if (over) request.stop(over)
      },
      onError: (error) => log?.warn({err: error, uploadId: row.id}, 'could not record upload progress; the next checkpoint will'),
    })
  }

  /**
   * A request that read the row just before a refusal finds the file gone (its stat, the
   * hashers' catch-up read, the sink's open): it answers 415 with the reason, like the next.
   */
  private async refusedMeanwhile(id: string, error: unknown): Promise<never> {
    const missing = (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' || error === ERRORS.FILE_NO_LONGER_EXISTS
    const now = missing ? await this.uploads.findById(id) : null
    if (now && refusedWhileArriving(now)) throw new UnsupportedMediaType(now.failureReason ?? `upload ${id} was refused`)
    throw error
  }

  /** After a request found its row no longer receiving: 410 (415 if refused) unless it was completed meanwhile. */
  private async refuseIfGone(id: string): Promise<void> {
    const now = await this.uploads.findById(id)
    if (now && refusedWhileArriving(now)) {
      this.hashers.forget(id)
      throw new UnsupportedMediaType(now.failureReason ?? `upload ${id} was refused`)
    }
    if (now?.status !== UploadStatus.Completed) throw goneWhileReceiving(id)
  }

  /**
   * The final digests of a fully received upload: from the hashers that took its last bytes,
   * or (after a restart between the last byte and completion) from the file. `size`: the
   * upload's length, when the caller knows it (else read from the row).
   */
  async digests(id: string, size?: number): Promise<{sha256: string; md5: string}> {
    // The request that took the last bytes knows the size; only a recovery reads the row for it.
    if (size === undefined) {
      const row = await this.uploads.findById(id)
      if (!row) throw ERRORS.FILE_NOT_FOUND
      size = row.size ?? row.bytesReceived
    }
    const hasher = await this.hashers.at(id, this.filePath(id), size, size)
    this.hashers.forget(id)
    this.inspection?.forget(id)
    return hasher.digests().catch(async (error: unknown) => {
      if (!(error instanceof HashThreadLost)) throw error
      // Its hashing thread died with the state: the file holds every byte, read it once.
      const again = UploadHasher.fresh(size)
      await again.catchUp(this.filePath(id), size)
      return again.digests()
    })
  }

  /**
   * Termination (DELETE): the row first, then the file. @tus/file-store's order (file, then
   * record) would leave a row whose bytes are gone when the database fails between them: the
   * client is answered 503 for an upload it can then no longer resume.
   */
  override async remove(id: string): Promise<void> {
    await this.catalog.delete(id)
    this.hashers.forget(id)
    this.inspection?.forget(id)
    await unlink(this.filePath(id)).catch(ignoreMissing)
  }

  /** Hashers already holding an upload's bytes (a final upload assembled from its partials). */
  adoptHasher(id: string, hasher: UploadHasher): void {
    this.hashers.keep(id, hasher)
  }

  /**
   * Removes this node's uploads past their expiry, except those whose lock is held: a request
   * is writing them (its checkpoints move the expiry on), or is about to. Every write to an
   * upload runs on the node that holds it (cluster forwarding), so this node's lock is enough.
   */
  override async deleteExpired(): Promise<number> {
    let removed = 0
    const busy = new Set<string>()
    for (;;) {
      const now = new Date()
      const batch = (await this.uploads.findExpired(this.options.nodeId, now, 100 + busy.size)).filter((row) => !busy.has(row.id))
      for (const row of batch) {
        const lock = this.options.locker.tryLock(row.id)
        if (!lock) {
          busy.add(row.id)
          continue
        }
        try {
          // Marked first: once the file goes, no request may find the row still receiving.
          if (await this.uploads.expireIfDue(row.id, now)) {
            await unlink(this.filePath(row.id)).catch(ignoreMissing)
            removed++
          }
        } finally {
          await lock.unlock()
        }
      }
      if (batch.length < 100) return removed
    }
  }
}

/** A write in flight on this process: its body, its end, and its sink once it has one. */
interface Receiving {
  source: Readable
  done: Promise<unknown>
  sink?: HashingFileSink
  /** A body another node forwards, sealed: its bytes are verified (and count) only at its end. */
  forwarded: boolean
}

/** How long a HEAD beside a forwarded write waits for it to end (a cut's word from the forwarder). */
const FORWARDED_CUT_GRACE_MS = 500

/**
 * Streams `source` through `stages` (the last one writes the file). A stage's error stops them
 * without destroying `source`: @tus/server pipes the request into it within its own pipeline,
 * which answers, and releases the upload's lock, as soon as `source` is destroyed, before this
 * write could record what it stored. `source`'s own errors (the client went away) still stop
 * the stages.
 */
async function streamInto(source: Readable, stages: [Writable, ...Writable[]]): Promise<void> {
  const head = stages[0]
  finished(source, {writable: false}).catch((error: unknown) => head.destroy(error as Error))
  source.pipe(head)
  await (stages.length > 1 ? pipeline(stages) : finished(head))
}

const goneWhileReceiving = (id: string) =>
  new Gone(`upload ${id} expired or was terminated while this request was sending it; its bytes were not kept`)

/** Every algorithm a trailer may name, or the ones the header and a forwarded seal need. */
function digestAlgorithms(checksum: RequestContext['checksum'], forwarded: ForwardedBodyCheck | undefined): ChecksumAlgorithm[] | undefined {
  if (checksum && !checksum.expected) return undefined
  return [...new Set<ChecksumAlgorithm>([...(checksum?.expected ? [checksum.expected.algorithm] : []), ...(forwarded ? (['sha256'] as const) : [])])]
}

/** The forwarded seal first (bytes altered between nodes are that, whatever the client's checksum says), then Upload-Checksum. */
function verifyBody(digest: RequestDigest, checksum: RequestContext['checksum'], forwarded: ForwardedBodyCheck | undefined): {error?: AppError; cut?: boolean} {
  const sealed = forwarded?.verdict(digest.digest('sha256')!)
  if (sealed && 'error' in sealed) return {error: sealed.error}
  const rejection = checksum ? checkDigest(digest, checksum) : undefined
  return rejection ? {error: rejection} : {cut: sealed?.cut ?? false}
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

/** A write's failure as the client should hear it: a full disk and an unreachable database are ours to retry (507, 503), not a 500. */
function mapWriteFailure(failure: unknown): unknown {
  if (typeof failure === 'object' && failure !== null && 'status_code' in failure) return failure
  return storageError(failure) ?? databaseUnavailable(failure) ?? ERRORS.FILE_WRITE_ERROR
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error
}
