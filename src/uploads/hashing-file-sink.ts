/**
 * A Writable that appends an upload's bytes to its file at a given offset and feeds each chunk
 * to the hashers only after it is on disk, so the hash state always describes exactly the bytes
 * in the file, even when the request is cut in the middle. It also tells when its source went
 * silent: time spent waiting for input, never time spent writing (a slow disk is not the client).
 * A sink whose source trickles lets go of its file descriptor between writes (after
 * RELEASE_AFTER_MS without input) and opens the file again for the next one: 10 000 slow uploads
 * would otherwise hold 10 000 files beside their 10 000 sockets, past a usual descriptor limit.
 */
import {open, type FileHandle} from 'node:fs/promises'
import {Writable} from 'node:stream'

export interface ChunkObserver {
  update(chunk: Uint8Array): void
}

/** Called once the sink has waited `ms` for its next bytes (0: never). */
export interface SilenceWatch {
  ms: number
  onSilence: () => void
}

/** Idle time after which a sink closes its file until its next write. */
export const RELEASE_AFTER_MS = 250

export class HashingFileSink extends Writable {
  private file?: FileHandle
  /** The close of an idle file, in progress. */
  private releasing: Promise<void> | undefined
  private releaseTimer: NodeJS.Timeout | undefined
  /** Offset of the next byte; after the stream ends, the upload's new offset. */
  position: number
  private writing = false
  private silenceTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly filePath: string,
    offset: number,
    private readonly observers: ChunkObserver[],
    private readonly silence?: SilenceWatch
  ) {
    super({highWaterMark: 4 << 20})
    this.position = offset
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.filePath, 'r+').then(
      (file) => {
        this.file = file
        this.watchSilence()
        callback()
      },
      (error: Error) => callback(error)
    )
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
    clearTimeout(this.silenceTimer)
    clearTimeout(this.releaseTimer)
    callback()
  }

  override _writev(chunks: Array<{chunk: Buffer}>, callback: (error?: Error | null) => void): void {
    this.writeThenHash(chunks.map((c) => c.chunk), callback)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeThenHash([chunk], callback)
  }

  /**
   * Once the bytes are on disk, the stream is told first, so it hands the next chunks to the
   * thread pool at once, and the written ones are hashed right after, in the same tick: the
   * next write and this hash overlap, and nothing can observe the hashers in between.
   */
  private writeThenHash(buffers: Buffer[], callback: (error?: Error | null) => void): void {
    this.writing = true
    this.writeAll(buffers).then(
      (written) => {
        this.writing = false
        this.silenceTimer?.refresh()
        this.releaseWhenIdle()
        callback()
        for (const buffer of written) this.observe(buffer)
      },
      (error: Error) => callback(error)
    )
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
    this.file ??= await open(this.filePath, 'r+')
    return this.file
  }

  /** One timer for the whole stream, rearmed after each write: no input for a while closes the file. */
  private releaseWhenIdle(): void {
    if (this.releaseTimer) return void this.releaseTimer.refresh()
    this.releaseTimer = setTimeout(() => {
      const file = this.file
      if (this.writing || this.destroyed || !file || this.writableLength > 0) return
      this.file = undefined
      this.releasing = file.close().then(
        () => (this.releasing = undefined),
        () => (this.releasing = undefined)
      )
    }, RELEASE_AFTER_MS)
    this.releaseTimer.unref()
  }

  private observe(chunk: Buffer): void {
    for (const observer of this.observers) observer.update(chunk)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.silenceTimer)
    clearTimeout(this.releaseTimer)
    const file = this.file
    this.file = undefined
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
