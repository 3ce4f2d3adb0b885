/**
 * The whole-file SHA-256 and MD5, computed as the bytes arrive, with Node's crypto (OpenSSL:
 * several times faster than any WebAssembly hasher here, see docs/benchmarks.md).
 *
 * A hash state cannot be exported from Node's crypto, so the node that receives an upload
 * keeps its hashers in memory between requests (LiveHashers). A resume that finds none — the
 * process restarted, or the hashers were evicted — catches up by reading the bytes already on
 * disk once; every other request hashes only its own bytes, in the pass that writes them.
 */
import {createHash, type Hash} from 'node:crypto'
import {createReadStream} from 'node:fs'

export interface FileDigests {
  sha256: string
  md5: string
}

export class UploadHasher {
  private constructor(
    private readonly sha256: Hash,
    private readonly md5: Hash,
    /** Bytes hashed so far, from the start of the upload. */
    public bytes: number
  ) {}

  static fresh(): UploadHasher {
    return new UploadHasher(createHash('sha256'), createHash('md5'), 0)
  }

  update(chunk: Uint8Array): void {
    this.sha256.update(chunk)
    this.md5.update(chunk)
    this.bytes += chunk.byteLength
  }

  /** An independent copy: to roll back to, or to finish without ending this one. */
  copy(): UploadHasher {
    return new UploadHasher(this.sha256.copy(), this.md5.copy(), this.bytes)
  }

  digests(): FileDigests {
    const done = this.copy()
    return {sha256: done.sha256.digest('hex'), md5: done.md5.digest('hex')}
  }

  /** Hashes the file's bytes from `this.bytes` up to `toOffset` (a resume with no hashers in memory). */
  async catchUp(filePath: string, toOffset: number): Promise<void> {
    if (toOffset <= this.bytes) return
    const stream = createReadStream(filePath, {start: this.bytes, end: toOffset - 1, highWaterMark: 1 << 20})
    for await (const chunk of stream) this.update(chunk as Buffer)
    if (this.bytes !== toOffset) {
      throw new Error(`upload file is shorter (${this.bytes} bytes) than its recorded offset (${toOffset})`)
    }
  }
}

/**
 * The hashers of the uploads this process is receiving, by upload id, least recently used
 * evicted first. An evicted upload's next request catches up from the file.
 */
export class LiveHashers {
  private readonly live = new Map<string, UploadHasher>()

  constructor(private readonly capacity = 10_000) {}

  /** The hasher for `id` positioned at `offset`, catching up from the file when none is in memory. */
  async at(id: string, filePath: string, offset: number): Promise<UploadHasher> {
    let hasher = this.live.get(id)
    this.live.delete(id)
    if (!hasher || hasher.bytes > offset) hasher = UploadHasher.fresh()
    await hasher.catchUp(filePath, offset)
    return hasher
  }

  keep(id: string, hasher: UploadHasher): void {
    this.live.delete(id)
    this.live.set(id, hasher)
    if (this.live.size > this.capacity) this.live.delete(this.live.keys().next().value!)
  }

  forget(id: string): void {
    this.live.delete(id)
  }
}
