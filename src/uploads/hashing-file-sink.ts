/**
 * A Writable that appends an upload's bytes to its file at a given offset and feeds each chunk
 * to the hashers only after it is on disk, so the saved hash state always describes exactly the
 * bytes in the file, even when the request is cut in the middle.
 */
import {open, type FileHandle} from 'node:fs/promises'
import {Writable} from 'node:stream'

export interface ChunkObserver {
  update(chunk: Uint8Array): void
}

export class HashingFileSink extends Writable {
  private file?: FileHandle
  /** Offset of the next byte; after the stream ends, the upload's new offset. */
  position: number

  constructor(
    private readonly filePath: string,
    offset: number,
    private readonly observers: ChunkObserver[]
  ) {
    super({highWaterMark: 4 << 20})
    this.position = offset
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.filePath, 'r+').then(
      (file) => {
        this.file = file
        callback()
      },
      (error: Error) => callback(error)
    )
  }

  override _writev(chunks: Array<{chunk: Buffer}>, callback: (error?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk)
    this.writeAll(buffers).then(() => callback(), callback)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback)
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    const file = this.file!
    let pending = buffers
    while (pending.length > 0) {
      const {bytesWritten} = await file.writev(pending, this.position)
      // Hash exactly what reached the file, in order; a short write leaves the rest pending.
      let remaining = bytesWritten
      const rest: Buffer[] = []
      for (const buffer of pending) {
        if (remaining >= buffer.byteLength) {
          this.observe(buffer)
          remaining -= buffer.byteLength
        } else if (remaining > 0) {
          this.observe(buffer.subarray(0, remaining))
          rest.push(buffer.subarray(remaining))
          remaining = 0
        } else {
          rest.push(buffer)
        }
      }
      this.position += bytesWritten
      pending = rest
    }
  }

  private observe(chunk: Buffer): void {
    for (const observer of this.observers) observer.update(chunk)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const file = this.file
    this.file = undefined
    if (!file) return callback(error)
    file.close().then(
      () => callback(error),
      (closeError: Error) => callback(error ?? closeError)
    )
  }
}
