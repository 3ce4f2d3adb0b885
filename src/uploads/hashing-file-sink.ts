/**
 * A Writable that appends an upload's bytes to its file at a given offset and feeds each chunk
 * to the hashers only after it is on disk, so the hash state always describes exactly the bytes
 * in the file, even when the request is cut in the middle. It also tells when its source went
 * silent: time spent waiting for input, never time spent writing (a slow disk is not the client).
 * A sink whose source trickles gathers its small chunks (up to COALESCE_BYTES, for at most
 * COALESCE_MS, within a process-wide COALESCE_BUDGET) and writes them at once, and lets go of its
 * file descriptor between writes (after RELEASE_AFTER_MS without input), opening the file again
 * for the next one: 10 000 phones sending 1 KiB a second would otherwise cost an open, a write
 * and a close each per second (measured: the node's one core went to those thread-pool round
 * trips, and HEADs waited seconds), and would hold 10 000 files beside their 10 000 sockets, past
 * a usual descriptor limit. Gathered bytes are not on disk yet, so they are not counted (the
 * offset a HEAD or a checkpoint sees is what is on disk); the end of the body, and a cut,
 * write them before the sink finishes.
 */
import {open, type FileHandle} from 'node:fs/promises'
import {Writable} from 'node:stream'

export interface ChunkObserver {
  update(chunk: Uint8Array): void
  /** The longest this observer may wait to see bytes that arrived (a sink gathers no longer; default COALESCE_MS). */
  readonly maxLagMs?: number
  /** Asked before `update` with the bytes to come: a promise while the observer is backed up (a hashing thread behind); the sink waits for it, holding them. */
  admit?(bytes: number): Promise<void> | undefined
}

/** Called once the sink has waited `ms` for its next bytes (0: never). */
export interface SilenceWatch {
  ms: number
  onSilence: () => void
}

/** Idle time after which a sink closes its file until its next write. */
export const RELEASE_AFTER_MS = 250
/** Files all sinks of the process hold open, past which a sink closes its file after each write. */
const OPEN_FILES_SOFT_LIMIT = 1024
let openSinkFiles = 0
/** Chunks smaller than this in all are gathered before they are written... */
export const COALESCE_BYTES = 64 << 10
/** ...for at most this long (the progress checkpoints' own interval)... */
export const COALESCE_MS = 3000
/** ...while all sinks of the process hold less than this ungathered: memory stays bounded. */
const COALESCE_BUDGET = 32 << 20
let gatheredInProcess = 0

export class HashingFileSink extends Writable {
  private file?: FileHandle
  /** The close of an idle file, in progress. */
  private releasing: Promise<void> | undefined
  private releaseTimer: NodeJS.Timeout | undefined
  /** Offset of the next byte; after the stream ends, the upload's new offset. */
  position: number
  private writing = false
  private silenceTimer: NodeJS.Timeout | undefined
  /** Chunks received, not written yet (small ones, gathered: see COALESCE_BYTES). */
  private gathered: Buffer[] = []
  private gatheredBytes = 0
  private gatherTimer: NodeJS.Timeout | undefined
  /** The last write to the file (they run one after another); a failed one fails the ones after it. */
  private lastWrite: Promise<void> = Promise.resolve()

  constructor(
    private readonly filePath: string,
    offset: number,
    private readonly observers: ChunkObserver[],
    private readonly silence?: SilenceWatch,
    gatherMs = COALESCE_MS
  ) {
    // Small: while a hashing thread is backed up the sink holds what it buffered, per upload,
    // and a thousand uploads at once hold a thousand of these (4 MiB: peak RSS ~950 MB, not ~550).
    super({highWaterMark: 256 << 10})
    this.position = offset
    this.gatherMs = Math.min(gatherMs, ...observers.map((o) => o.maxLagMs ?? gatherMs))
  }

  private readonly gatherMs: number

  /** The file is opened by the first write, not here: a crowd of requests arriving at once holds no files until bytes come. */
  override _construct(callback: (error?: Error | null) => void): void {
    this.watchSilence()
    callback()
  }

  /** One timer for the whole stream, rearmed after each write (refresh() is cheap). */
  private watchSilence(): void {
    const silence = this.silence
    if (!silence || silence.ms <= 0) return
    this.silenceTimer = setTimeout(() => {
      // A write still in flight rearms the timer when it ends.
      if (!this.writing && !this.destroyed) silence.onSilence()
    }, silence.ms)
    this.silenceTimer.unref()
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.flush().then(
      () => {
        clearTimeout(this.silenceTimer)
        clearTimeout(this.releaseTimer)
        callback()
      },
      (error: Error) => callback(error)
    )
  }

  override _writev(chunks: Array<{chunk: Buffer}>, callback: (error?: Error | null) => void): void {
    this.accept(chunks.map((c) => c.chunk), callback)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.accept([chunk], callback)
  }

  /** Input arrived: gathered while it is small (the source goes on at once), else written with what was gathered. */
  private accept(buffers: Buffer[], callback: (error?: Error | null) => void): void {
    this.silenceTimer?.refresh()
    let bytes = 0
    for (const buffer of buffers) bytes += buffer.byteLength
    this.gathered.push(...buffers)
    this.gatheredBytes += bytes
    gatheredInProcess += bytes
    if (this.gatheredBytes < COALESCE_BYTES && gatheredInProcess < COALESCE_BUDGET) {
      this.gatherTimer ??= setTimeout(() => this.flush().catch((error: Error) => this.destroy(error)), this.gatherMs)
      return callback()
    }
    this.flush().then(() => callback(), callback)
  }

  /**
   * Writes what was gathered (after the write in flight, if any); resolves once it is on disk
   * and hashed. Also for a reader that must see every byte received so far (a HEAD beside this
   * write), and once the sink is done, at once.
   */
  flush(): Promise<void> {
    clearTimeout(this.gatherTimer)
    this.gatherTimer = undefined
    const buffers = this.gathered
    if (buffers.length > 0) {
      gatheredInProcess -= this.gatheredBytes
      this.gathered = []
      this.gatheredBytes = 0
      this.lastWrite = this.lastWrite.then(() => new Promise<void>((resolve, reject) => this.writeThenHash(buffers, (error) => (error ? reject(error) : resolve()))))
    }
    return this.lastWrite
  }

  /**
   * Once the bytes are on disk they go to the observers (the hashers only hand them to their
   * thread), and the stream is told, so it hands the next chunks to the thread pool while they
   * are hashed. An observer that is backed up is waited for first: the stream takes nothing more
   * until it has room, and the bytes wait here, not in a copy.
   */
  private writeThenHash(buffers: Buffer[], callback: (error?: Error | null) => void): void {
    this.writing = true
    this.writeAll(buffers).then(
      (written) => {
        this.writing = false
        this.silenceTimer?.refresh()
        this.releaseWhenIdle()
        const observeAll = () => {
          for (const buffer of written) this.observe(buffer)
          callback()
        }
        const turn = this.admission(written.reduce((sum, b) => sum + b.byteLength, 0))
        if (turn) turn.then(observeAll, callback)
        else observeAll()
      },
      (error: Error) => callback(error)
    )
  }

  private admission(bytes: number): Promise<unknown> | undefined {
    let waits: Array<Promise<void>> | undefined
    for (const observer of this.observers) {
      const wait = observer.admit?.(bytes)
      if (wait) (waits ??= []).push(wait)
    }
    return waits && Promise.all(waits)
  }

  /** Writes every buffer at the current position (a short write continues); what was written, in order. */
  private async writeAll(buffers: Buffer[]): Promise<Buffer[]> {
    const file = await this.openFile()
    const written: Buffer[] = []
    let pending = buffers
    while (pending.length > 0) {
      const {bytesWritten} = await file.writev(pending, this.position)
      let remaining = bytesWritten
      const rest: Buffer[] = []
      for (const buffer of pending) {
        if (remaining >= buffer.byteLength) {
          written.push(buffer)
          remaining -= buffer.byteLength
        } else if (remaining > 0) {
          written.push(buffer.subarray(0, remaining))
          rest.push(buffer.subarray(remaining))
          remaining = 0
        } else {
          rest.push(buffer)
        }
      }
      this.position += bytesWritten
      pending = rest
    }
    return written
  }

  /** The open file, opened again if an idle spell closed it. */
  private async openFile(): Promise<FileHandle> {
    await this.releasing
    if (!this.file) {
      this.file = await open(this.filePath, 'r+')
      openSinkFiles++
    }
    return this.file
  }

  /**
   * One timer for the whole stream, rearmed after each write: no input for a while closes the
   * file. With many files open across the process, it closes at once instead: a late timer (a
   * busy event loop) must not let thousands of idle files pile up beside their sockets.
   */
  private releaseWhenIdle(): void {
    // (Even with more input queued: under that many, a file opened again costs less than one more held.)
    if (openSinkFiles > OPEN_FILES_SOFT_LIMIT) return this.release(true)
    if (this.releaseTimer) return void this.releaseTimer.refresh()
    this.releaseTimer = setTimeout(() => this.release(false), RELEASE_AFTER_MS)
    this.releaseTimer.unref()
  }

  private release(evenIfMoreQueued: boolean): void {
    const file = this.file
    if (this.writing || this.destroyed || !file || (this.writableLength > 0 && !evenIfMoreQueued)) return
    this.file = undefined
    openSinkFiles--
    this.releasing = file.close().then(
      () => (this.releasing = undefined),
      () => (this.releasing = undefined)
    )
  }

  private observe(chunk: Buffer): void {
    for (const observer of this.observers) observer.update(chunk)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.silenceTimer)
    // A cut body: what arrived still reaches the disk (and counts), as it would have ungathered.
    this.flush()
      .catch(() => {})
      .then(() => this.closeFile(error, callback))
  }

  private closeFile(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.releaseTimer)
    const file = this.file
    this.file = undefined
    if (file) openSinkFiles--
    if (!file) {
      const releasing = this.releasing ?? Promise.resolve()
      return void releasing.then(() => callback(error))
    }
    file.close().then(
      () => callback(error),
      (closeError: Error) => callback(error ?? closeError)
    )
  }
}
