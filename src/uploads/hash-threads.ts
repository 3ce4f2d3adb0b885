/**
 * Worker threads that hold uploads' SHA-256 and MD5 states and hash what the upload path hands
 * them, so the event loop that receives the bytes never spends its time hashing them: with both
 * hashes on the loop (OpenSSL: ~1.7 GiB/s SHA-256, ~750 MiB/s MD5 on this machine), one upload
 * could not go past ~260 MiB/s, and every other request waited behind the hashing.
 *
 * A state lives on one thread, named by a number; messages to a thread are handled in the order
 * sent, so a copy or a digest asked for after some bytes describes exactly those bytes. The
 * bytes are copied once, batched per tick, into 1 MiB buffers that the thread sends back to be
 * filled again: allocating one per message left spent buffers waiting for the thread's garbage
 * collector (peak RSS 238 MB, not 158, through a 1 GiB upload). Each thread counts the bytes
 * it has not hashed yet: past HIGH_WATER, `drained()` makes writers wait, so a fast client
 * cannot queue a file in memory.
 * A thread that dies takes its states with it: their hashers report `lost`, and the upload path
 * rebuilds them from the file, as after a restart.
 */
import {availableParallelism} from 'node:os'
import {Worker} from 'node:worker_threads'

export interface HashDigests {
  sha256: string
  md5: string
}

/** The thread's side, plain JavaScript (no build step, the same on every Node version). */
const THREAD_SOURCE = `
const {parentPort} = require('node:worker_threads')
const {createHash} = require('node:crypto')
const states = new Map()
parentPort.on('message', (m) => {
  const state = states.get(m.state)
  switch (m.op) {
    case 'open':
      states.set(m.state, [createHash('sha256'), createHash('md5')])
      break
    case 'update': {
      const bytes = new Uint8Array(m.buffer, 0, m.length)
      if (state) { state[0].update(bytes); state[1].update(bytes) }
      // The buffer goes back to be filled again: no allocation per message on either side.
      parentPort.postMessage({op: 'hashed', bytes: m.length, buffer: m.buffer}, [m.buffer])
      break
    }
    case 'copy':
      if (state) states.set(m.to, [state[0].copy(), state[1].copy()])
      break
    case 'digest':
      parentPort.postMessage(state
        ? {op: 'digest', request: m.request, sha256: state[0].copy().digest('hex'), md5: state[1].copy().digest('hex')}
        : {op: 'digest', request: m.request, error: 'no such hash state'})
      break
    case 'close':
      states.delete(m.state)
      break
  }
})
`

/** Bytes handed to a thread and not hashed yet past which writers wait, and below which they go on. */
const HIGH_WATER = 8 << 20
const LOW_WATER = 4 << 20
/** The buffers bytes travel in, going back and forth between the threads. */
const BUFFER_SIZE = 1 << 20
const MAX_FREE_BUFFERS = 16

export class HashThreadLost extends Error {
  constructor() {
    super('the hashing thread stopped; the hashes are rebuilt from the file')
  }
}

type ThreadMessage = {op: 'hashed'; bytes: number; buffer: ArrayBuffer} | ({op: 'digest'; request: number} & ({sha256: string; md5: string} | {error: string}))

export class HashThread {
  private readonly worker: Worker
  private nextState = 1
  private nextRequest = 1
  private unhashed = 0
  private readonly freeBuffers: ArrayBuffer[] = []
  /** The most bytes ever handed to this thread and not hashed yet: what its backpressure bounds. */
  peakUnhashed = 0
  private readonly digestsAsked = new Map<number, {resolve: (d: HashDigests) => void; reject: (e: Error) => void}>()
  private drainWaiters: Array<() => void> = []
  alive = true

  constructor() {
    this.worker = new Worker(THREAD_SOURCE, {eval: true})
    this.worker.on('message', (message: ThreadMessage) => this.received(message))
    this.worker.on('error', () => this.lost())
    this.worker.on('exit', () => this.lost())
    // An idle thread does not keep the process alive (unref after the listeners: they ref it);
    // one with work in hand does, so whoever awaits a digest gets it.
    this.worker.unref()
  }

  private busy = false

  /** Refs the thread while it has bytes to hash or digests to give. */
  private noteWork(): void {
    const busy = this.alive && (this.unhashed > 0 || this.digestsAsked.size > 0)
    if (busy === this.busy) return
    this.busy = busy
    if (busy) this.worker.ref()
    else this.worker.unref()
  }

  open(): number {
    const state = this.nextState++
    this.post({op: 'open', state})
    return state
  }

  /** Hands `chunks` (in order) to the thread, copied into its buffers (the request's may share memory with other data). */
  update(state: number, chunks: readonly Uint8Array[], length: number): void {
    // A few bytes (a slow upload's tick) get a buffer of their size; more go in pooled buffers.
    let buffer = length < BUFFER_SIZE / 4 ? new ArrayBuffer(length) : this.takeBuffer()
    let filled = 0
    for (const chunk of chunks) {
      for (let at = 0; at < chunk.byteLength; ) {
        const n = Math.min(chunk.byteLength - at, buffer.byteLength - filled)
        new Uint8Array(buffer, filled, n).set(chunk.subarray(at, at + n))
        filled += n
        at += n
        if (filled === buffer.byteLength) {
          this.send(state, buffer, filled)
          buffer = this.takeBuffer()
          filled = 0
        }
      }
    }
    if (filled > 0) this.send(state, buffer, filled)
    else this.returnBuffer(buffer)
    this.noteWork()
  }

  private send(state: number, buffer: ArrayBuffer, length: number): void {
    this.unhashed += length
    this.peakUnhashed = Math.max(this.peakUnhashed, this.unhashed)
    this.post({op: 'update', state, buffer, length}, [buffer])
  }

  private takeBuffer(): ArrayBuffer {
    return this.freeBuffers.pop() ?? new ArrayBuffer(BUFFER_SIZE)
  }

  private returnBuffer(buffer: ArrayBuffer): void {
    if (buffer.byteLength === BUFFER_SIZE && this.freeBuffers.length < MAX_FREE_BUFFERS) this.freeBuffers.push(buffer)
  }

  copy(state: number): number {
    const to = this.nextState++
    this.post({op: 'copy', state, to})
    return to
  }

  digests(state: number): Promise<HashDigests> {
    if (!this.alive) return Promise.reject(new HashThreadLost())
    const request = this.nextRequest++
    return new Promise((resolve, reject) => {
      this.digestsAsked.set(request, {resolve, reject})
      this.post({op: 'digest', state, request})
      this.noteWork()
    })
  }

  close(state: number): void {
    this.post({op: 'close', state})
  }

  /** Resolves once the thread is below its low water mark; undefined when it is not backed up. */
  drained(): Promise<void> | undefined {
    if (this.unhashed <= HIGH_WATER || !this.alive) return undefined
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  /** Ends the thread (tests; a process that exits ends its threads anyway). */
  async terminate(): Promise<void> {
    await this.worker.terminate()
  }

  private post(message: object, transfer?: ArrayBuffer[]): void {
    if (this.alive) this.worker.postMessage(message, transfer)
  }

  private received(message: ThreadMessage): void {
    if (message.op === 'hashed') {
      this.returnBuffer(message.buffer)
      this.unhashed -= message.bytes
      if (this.unhashed <= LOW_WATER) this.releaseWriters()
      this.noteWork()
      return
    }
    const asked = this.digestsAsked.get(message.request)
    this.digestsAsked.delete(message.request)
    this.noteWork()
    if ('error' in message) asked?.reject(new HashThreadLost())
    else asked?.resolve({sha256: message.sha256, md5: message.md5})
  }

  private lost(): void {
    if (!this.alive) return
    this.alive = false
    for (const asked of this.digestsAsked.values()) asked.reject(new HashThreadLost())
    this.digestsAsked.clear()
    this.releaseWriters()
  }

  private releaseWriters(): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const resolve of waiters) resolve()
  }
}

/**
 * The process's hashing threads: one per core beside the event loop's (at least one, at most
 * four), started when first needed; a new state goes to the next thread in turn, and a thread
 * that died is replaced.
 */
class HashThreadPool {
  private threads: HashThread[] = []
  private turn = 0

  constructor(private readonly size: number) {}

  next(): HashThread {
    this.threads = this.threads.filter((t) => t.alive)
    if (this.threads.length < this.size) {
      const thread = new HashThread()
      this.threads.push(thread)
      return thread
    }
    return this.threads[this.turn++ % this.threads.length]!
  }

  /** The threads running now. */
  get running(): readonly HashThread[] {
    return this.threads.filter((t) => t.alive)
  }

  /** Ends every thread (tests of a thread's death). */
  async terminateAll(): Promise<void> {
    const threads = this.threads
    this.threads = []
    await Promise.all(threads.map((t) => t.terminate()))
  }
}

export type {HashThreadPool}
export const hashThreads = new HashThreadPool(Math.max(1, Math.min(4, availableParallelism() - 1)))
