/**
 * The whole-file SHA-256 and MD5, computed as the bytes arrive, with Node's crypto (OpenSSL:
 * several times faster than any WebAssembly hasher here, see docs/benchmarks.md), on a hashing
 * thread (hash-threads.ts): the event loop only hands the bytes over.
 *
 * A hash state cannot be exported from Node's crypto, so the node that receives an upload
 * keeps its hashers in memory between requests (LiveHashers). A resume that finds none — the
 * process restarted, the hashers were evicted or their thread died — catches up by reading the
 * bytes already on disk once; every other request hashes only its own bytes, in the pass that
 * writes them.
 */
import {createReadStream} from 'node:fs'
import {hashThreads, type HashThread} from './hash-threads.js'

export interface FileDigests {
  sha256: string
  md5: string
}

/** States nobody holds any more are dropped from their thread. */
const released = new FinalizationRegistry<{thread: HashThread; state: number}>(({thread, state}) => thread.close(state))

export class UploadHasher {
  /** Chunks handed in this tick, sent to the thread together at its end. */
  private staged: Uint8Array[] = []
  private stagedBytes = 0

  private constructor(
    private readonly thread: HashThread,
    private readonly state: number,
    /** Bytes hashed so far (or handed to the thread, in order), from the start of the upload. */
    public bytes: number
  ) {
    released.register(this, {thread, state})
  }

  static fresh(): UploadHasher {
    const thread = hashThreads.next()
    return new UploadHasher(thread, thread.open(), 0)
  }

  /** False once its thread died: what it held is gone, and the upload's bytes must be read again. */
  get intact(): boolean {
    return this.thread.alive
  }

  update(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return
    if (this.staged.length === 0) queueMicrotask(() => this.flush())
    this.staged.push(chunk)
    this.stagedBytes += chunk.byteLength
    this.bytes += chunk.byteLength
  }

  /** Undefined when `bytes` more may be handed in now, else a promise of their turn (the thread is backed up). */
  admit(bytes: number): Promise<void> | undefined {
    return this.thread.admit(bytes)
  }

  /** An independent copy: to roll back to, or to finish without ending this one. */
  copy(): UploadHasher {
    this.flush()
    return new UploadHasher(this.thread, this.thread.copy(this.state), this.bytes)
  }

  /** The digests of the bytes handed in so far; rejects with HashThreadLost if its thread died. */
  digests(): Promise<FileDigests> {
    this.flush()
    return this.thread.digests(this.state)
  }

  /** Hashes the file's bytes from `this.bytes` up to `toOffset` (a resume with no hashers in memory). */
  async catchUp(filePath: string, toOffset: number): Promise<void> {
    if (toOffset <= this.bytes) return
    const stream = createReadStream(filePath, {start: this.bytes, end: toOffset - 1, highWaterMark: 1 << 20})
    for await (const chunk of stream) {
      await this.admit((chunk as Buffer).byteLength)
      this.update(chunk as Buffer)
      this.flush()
    }
    if (this.bytes !== toOffset) {
      throw new Error(`upload file is shorter (${this.bytes} bytes) than its recorded offset (${toOffset})`)
    }
  }

  private flush(): void {
    if (this.stagedBytes === 0) return
    this.thread.update(this.state, this.staged, this.stagedBytes)
    this.staged = []
    this.stagedBytes = 0
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
    if (!hasher || hasher.bytes > offset || !hasher.intact) hasher = UploadHasher.fresh()
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
