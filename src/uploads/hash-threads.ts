/**
 * Worker threads that hold uploads' SHA-256 and MD5 states and hash what the upload path hands
 * them, so the event loop that receives the bytes never spends its time hashing them: with both
 * hashes on the loop (OpenSSL: ~1.7 GiB/s SHA-256, ~750 MiB/s MD5 on this machine), one upload
 * could not go past ~260 MiB/s, and every other request waited behind the hashing.
 *
 * A state lives on one thread, named by a number; messages to a thread are handled in the order
 * sent, so a copy or a digest asked for after some bytes describes exactly those bytes. The
 * bytes are copied once, batched per tick, into buffers (64 KiB to 1 MiB) that the thread
 * sends back to be filled again: allocating one per message left spent buffers waiting for the
 * thread's garbage collector (peak RSS 238 MB, not 158, through a 1 GiB upload). Writers ask to hand bytes
 * over before they copy them (`admit`): past HIGH_WATER bytes in hand and not hashed, they
 * wait, first come first served, holding their request's bytes rather than a copy and no
 * longer reading from their sockets; so neither a fast client nor a thousand uploads at once
 * queue more than that in memory.
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

/** Bytes handed (or admitted) to a thread and not hashed yet, past which writers wait. */
const HIGH_WATER = 8 << 20
/** The buffers bytes travel in, going back and forth between the threads: sizes 64 KiB to 1 MiB, doubling. */
const MIN_BUFFER_SIZE = 64 << 10
const MAX_BUFFER_SIZE = 1 << 20
/** Free buffers kept for reuse, per thread, at most. */
const MAX_POOLED_BYTES = 16 << 20

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
  private readonly freeBuffers = new Map<number, ArrayBuffer[]>()
  private pooledBytes = 0
  /** The most bytes ever handed to this thread and not hashed yet: what its backpressure bounds. */
  peakUnhashed = 0
  private readonly digestsAsked = new Map<number, {resolve: (d: HashDigests) => void; reject: (e: Error) => void}>()
  /** Bytes admitted and not handed over yet (they are, within the tick). */
  private admitted = 0
  private readonly admissions: Array<{bytes: number; resolve: () => void}> = []
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

  /** Refs the thread while it has bytes to hash or digests to give. */
  private noteWork(): void {
    if (this.alive && (this.unhashed > 0 || this.digestsAsked.size > 0)) this.worker.ref()
    else this.worker.unref()
  }

  open(): number {
    const state = this.nextState++
    this.post({op: 'open', state})
    return state
  }

  /** Hands `chunks` (in order) to the thread, copied into its buffers (the request's may share memory with other data). */
  update(state: number, chunks: readonly Uint8Array[], length: number): void {
    let left = length
    let buffer = this.takeBuffer(left)
    let filled = 0
    for (const chunk of chunks) {
      for (let at = 0; at < chunk.byteLength; ) {
        const n = Math.min(chunk.byteLength - at, buffer.byteLength - filled)
        new Uint8Array(buffer, filled, n).set(chunk.subarray(at, at + n))
        filled += n
        at += n
        left -= n
        if (filled === buffer.byteLength || left === 0) {
          this.send(state, buffer, filled)
          filled = 0
          if (left > 0) buffer = this.takeBuffer(left)
        }
      }
    }
    this.noteWork()
  }

  private send(state: number, buffer: ArrayBuffer, length: number): void {
    this.admitted = Math.max(0, this.admitted - length)
    this.unhashed += length
    this.peakUnhashed = Math.max(this.peakUnhashed, this.unhashed + this.admitted)
    this.post({op: 'update', state, buffer, length}, [buffer])
  }

  /** A buffer for `bytes` (at most 1 MiB of them): the smallest size class that holds them, from the pool when one is free. */
  private takeBuffer(bytes: number): ArrayBuffer {
    let size = MIN_BUFFER_SIZE
    while (size < bytes && size < MAX_BUFFER_SIZE) size *= 2
    const free = this.freeBuffers.get(size)
    const buffer = free?.pop()
    if (buffer) {
      this.pooledBytes -= size
      return buffer
    }
    return new ArrayBuffer(size)
  }

  private returnBuffer(buffer: ArrayBuffer): void {
    if (this.pooledBytes + buffer.byteLength > MAX_POOLED_BYTES) return
    const free = this.freeBuffers.get(buffer.byteLength) ?? []
    free.push(buffer)
    this.freeBuffers.set(buffer.byteLength, free)
    this.pooledBytes += buffer.byteLength
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

  /**
   * Asks to hand `bytes` over: undefined when they may go now, else a promise resolved when
   * their turn comes (first come, first served). A thread with nothing in hand takes any amount.
   */
  admit(bytes: number): Promise<void> | undefined {
    if (!this.alive) return undefined
    if (this.admissions.length === 0 && this.hasRoomFor(bytes)) {
      this.admitted += bytes
      return undefined
    }
    return new Promise((resolve) => this.admissions.push({bytes, resolve}))
  }

  private hasRoomFor(bytes: number): boolean {
    const inHand = this.unhashed + this.admitted
    return inHand === 0 || inHand + bytes <= HIGH_WATER
  }

  private admitWaiting(): void {
    while (this.admissions.length > 0 && (!this.alive || this.hasRoomFor(this.admissions[0]!.bytes))) {
      const next = this.admissions.shift()!
      this.admitted += next.bytes
      next.resolve()
    }
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
      this.admitWaiting()
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
    this.admitWaiting()
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

export const hashThreads = new HashThreadPool(Math.max(1, Math.min(4, availableParallelism() - 1)))
