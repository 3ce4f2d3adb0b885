/**
 * The whole-file SHA-256 and MD5, computed as the bytes arrive, with Node's crypto (OpenSSL:
 * several times faster than any WebAssembly hasher here, see docs/benchmarks.md). An upload of
 * THREAD_FROM_BYTES or more is hashed on a hashing thread (hash-threads.ts): the event loop only
 * hands its bytes over. A smaller one is hashed on the event loop: all of it costs under ~15 ms
 * there, less than the messages that would carry it, and a crowd of small or trickling uploads
 * (a message per write each) would keep the loop busier handing bytes over than hashing them.
 *
 * A hash state cannot be exported from Node's crypto, so the node that receives an upload
 * keeps its hashers in memory between requests (LiveHashers). A resume that finds none — the
 * process restarted, the hashers were evicted or their thread died — catches up by reading the
 * bytes already on disk once; every other request hashes only its own bytes, in the pass that
 * writes them.
 */
import {createHash, type Hash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {hashThreads, type HashDigests, type HashThread} from './hash-threads.js'


/** Uploads this large or larger (or of a length not known yet) are hashed on a hashing thread. */
export const THREAD_FROM_BYTES = 8 << 20

/** Where an upload's two hash states live: on the event loop, or on a hashing thread. */
interface HashState {
  /** True when chunks are best handed over together, once a tick (a message each). */
  readonly batched: boolean
  /** False once the state is gone (its thread died). */
  readonly intact: boolean
  update(chunks: readonly Uint8Array[], length: number): void
  admit(bytes: number): Promise<void> | undefined
  copy(): HashState
  digests(): Promise<HashDigests>
}

class LoopState implements HashState {
  readonly batched = false
  readonly intact = true
  constructor(
    private readonly sha256: Hash = createHash('sha256'),
    private readonly md5: Hash = createHash('md5')
  ) {}
  update(chunks: readonly Uint8Array[]): void {
    for (const chunk of chunks) {
      this.sha256.update(chunk)
      this.md5.update(chunk)
    }
  }
  admit(): undefined {
    return undefined
  }
  copy(): HashState {
    return new LoopState(this.sha256.copy(), this.md5.copy())
  }
  digests(): Promise<HashDigests> {
    return Promise.resolve({sha256: this.sha256.copy().digest('hex'), md5: this.md5.copy().digest('hex')})
  }
}

/** States nobody holds any more are dropped from their thread. */
const released = new FinalizationRegistry<{thread: HashThread; state: number}>(({thread, state}) => thread.close(state))

class ThreadState implements HashState {
  readonly batched = true
  constructor(
    private readonly thread: HashThread,
    private readonly state: number
  ) {
    released.register(this, {thread, state})
  }
  get intact(): boolean {
    return this.thread.alive
  }
  update(chunks: readonly Uint8Array[], length: number): void {
    this.thread.update(this.state, chunks, length)
  }
  admit(bytes: number): Promise<void> | undefined {
    return this.thread.admit(bytes)
  }
  copy(): HashState {
    return new ThreadState(this.thread, this.thread.copy(this.state))
  }
  digests(): Promise<HashDigests> {
    return this.thread.digests(this.state)
  }
}

export class UploadHasher {
  /** Chunks handed in this tick, sent to the thread together at its end. */
  private staged: Uint8Array[] = []
  private stagedBytes = 0

  private constructor(
    private readonly state: HashState,
    /** Bytes hashed so far (or handed to the thread, in order), from the start of the upload. */
    public bytes: number
  ) {}

  /** A hasher at byte 0 of an upload of `size` bytes (undefined: not known yet). */
  static fresh(size?: number | null): UploadHasher {
    if (size != null && size < THREAD_FROM_BYTES) return new UploadHasher(new LoopState(), 0)
    const thread = hashThreads.next()
    return new UploadHasher(new ThreadState(thread, thread.open()), 0)
  }

  /** False once its thread died: what it held is gone, and the upload's bytes must be read again. */
  get intact(): boolean {
    return this.state.intact
  }

  update(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return
    this.bytes += chunk.byteLength
    if (!this.state.batched) return this.state.update([chunk], chunk.byteLength)
    if (this.staged.length === 0) queueMicrotask(() => this.flush())
    this.staged.push(chunk)
    this.stagedBytes += chunk.byteLength
  }

  /** Undefined when `bytes` more may be handed in now, else a promise of their turn (the thread is backed up). */
  admit(bytes: number): Promise<void> | undefined {
    return this.state.admit(bytes)
  }

  /** An independent copy: to roll back to, or to finish without ending this one. */
  copy(): UploadHasher {
    this.flush()
    return new UploadHasher(this.state.copy(), this.bytes)
  }

  /** The digests of the bytes handed in so far; rejects with HashThreadLost if its thread died. */
  digests(): Promise<HashDigests> {
    this.flush()
    return this.state.digests()
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
    this.state.update(this.staged, this.stagedBytes)
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

  /** The hasher for `id` (of `size` bytes, when known) positioned at `offset`, catching up from the file when none is in memory. */
  async at(id: string, filePath: string, offset: number, size?: number | null): Promise<UploadHasher> {
    let hasher = this.live.get(id)
    this.live.delete(id)
    if (!hasher || hasher.bytes > offset || !hasher.intact) hasher = UploadHasher.fresh(size)
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
