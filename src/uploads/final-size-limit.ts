/**
 * MAX_UPLOAD_SIZE for tus concatenation. @tus/server holds each partial upload to the limit like
 * any upload; a final upload is the sum of its partials, so the sum is held to it too: when the
 * final is created (what its partials hold or declare), whenever a partial that an unfinished
 * final lists declares its length or receives bytes, and once more at assembly. Partials may
 * receive in parallel, on any node, and a final may be created while they do: each request
 * re-reads the finals that list it and the others' progress at its checkpoints, so together they pass the limit by at most a checkpoint's worth before one of
 * them is refused, and the assembly never builds a final over it. A final that goes over fails
 * with the reason; the partial's request answers 413, keeping what it stored before the limit.
 */
import {Transform, type TransformCallback} from 'node:stream'
import type {UploadRecord} from '../db/entities/upload.js'
import {PayloadTooLarge, type AppError} from '../errors.js'
import type {UploadRepository} from './upload-repository.js'

/** What a partial upload holds, or will hold once its declared length arrives. */
export const committedBytes = (part: Pick<UploadRecord, 'size' | 'bytesReceived'> | undefined): number => (part ? (part.size ?? part.bytesReceived) : 0)

/** The most bytes a partial may hold in all, and the unfinished final that sets that bound. */
export interface PartialRoom {
  bytes: number
  final: UploadRecord
}

export class FinalSizeLimit {
  constructor(
    private readonly uploads: UploadRepository,
    /** 0: no limit. */
    readonly maxSize: number
  ) {}

  /** undefined: no unfinished final lists the partial (or there is no limit). */
  async roomFor(partId: string): Promise<PartialRoom | undefined> {
    if (this.maxSize <= 0) return undefined
    const finals = await this.uploads.findPendingFinalsListing(partId)
    if (finals.length === 0) return undefined
    const ids = [...new Set(finals.flatMap((f) => f.concatParts ?? []))]
    const parts = new Map((await this.uploads.findByIds(ids)).map((p) => [p.id, p]))
    let tightest: PartialRoom | undefined
    for (const final of finals) {
      let others = 0
      let copies = 0
      for (const id of final.concatParts ?? []) {
        if (id === partId) copies++
        else others += committedBytes(parts.get(id))
      }
      const bytes = Math.floor((this.maxSize - others) / Math.max(copies, 1))
      if (!tightest || bytes < tightest.bytes) tightest = {bytes, final}
    }
    return tightest
  }

  /** Before partial `partId` declares `length`: 413 (and the final failed) if a final would go over. */
  async checkDeclared(partId: string, length: number): Promise<void> {
    const room = await this.roomFor(partId)
    if (room && length > room.bytes) {
      await this.fail(room.final)
      throw this.tooLarge(room.final, `declaring ${length} bytes`)
    }
  }

  /**
   * The bound for one request writing partial `partId` from `offset`, also when no final lists
   * it yet: one may be created while this request streams (concatenation-unfinished), and the
   * checkpoints will see it. undefined when there is no limit.
   */
  async guard(partId: string, offset: number): Promise<PartialGuard | undefined> {
    if (this.maxSize <= 0) return undefined
    const room = await this.roomFor(partId)
    if (room && offset > room.bytes) {
      await this.fail(room.final)
      throw this.tooLarge(room.final, `at ${offset} bytes`)
    }
    return new PartialGuard(this, partId, offset, room)
  }

  fail(final: UploadRecord): Promise<void> {
    return this.uploads.markFailed(final.id, `its partial uploads add up to more than the maximum upload size (${this.maxSize} bytes); upload the file again in smaller parts`)
  }

  tooLarge(final: UploadRecord, where: string): AppError {
    return new PayloadTooLarge(
      `this partial upload is part of final upload ${final.id}, whose partial uploads would add up to more than the maximum upload size (${this.maxSize} bytes) ${where}; the final upload has failed`
    )
  }
}

/** Refuses the bytes that would take a partial past its room; the room is re-read at checkpoints. */
export class PartialGuard extends Transform {
  private passed: number
  private over: PartialRoom | undefined

  constructor(
    private readonly limit: FinalSizeLimit,
    private readonly partId: string,
    offset: number,
    /** undefined: no unfinished final lists the partial (now). */
    private room: PartialRoom | undefined
  ) {
    super()
    this.passed = offset
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const room = this.room
    if (room && this.passed + chunk.byteLength > room.bytes) {
      this.over = room
      return done(this.limit.tooLarge(room.final, `past ${room.bytes} bytes of this one`))
    }
    this.passed += chunk.byteLength
    done(null, chunk)
  }

  /** At a checkpoint: the finals listing it and the others' progress since; an error when `position` is already past the room. */
  async recheck(position: number): Promise<AppError | undefined> {
    const room = await this.limit.roomFor(this.partId)
    this.room = room
    if (!room) return undefined
    if (position <= room.bytes) return undefined
    this.over = room
    return this.limit.tooLarge(room.final, `at ${position} bytes`)
  }

  /** After the request: fails the final it went over, if any. */
  async settle(): Promise<void> {
    if (this.over) await this.limit.fail(this.over.final)
  }
}
