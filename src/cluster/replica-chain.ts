/**
 * Chain (pipelined) replication of a large artifact, as HDFS pipelines a block's replicas: the
 * node holding it sends it once, to the first peer that lacks it; that peer writes it and, while
 * the bytes arrive, sends them on to the next peer of the chain, which does the same. What
 * crosses the sender's link is one copy, not one per peer.
 *
 * A peer forwards from its own partial file as it grows (never from the socket), so each hop
 * keeps its own pace and offset: the next peer may resume from any offset, even one behind what
 * this peer started from, and a next peer that fails is skipped: the one after it is sent the
 * same file from its own offset. Every peer verifies what it holds (by the wire hash, see
 * src/media/wire-hash.ts), and answers
 * for the rest of its chain; whatever a chain did not deliver, the sender sends directly, and
 * the catch-up loop stays the guarantee.
 */
import {WriteStream} from 'node:fs'
import {open, type FileHandle} from 'node:fs/promises'
import {PassThrough, Readable} from 'node:stream'
import type {ArtifactRecord} from '../db/entities/artifact.js'
import {BadRequest} from '../errors.js'
import type {Cluster} from './cluster.js'
import type {ClusterNode} from './node-registry.js'
import {peerRequest, readText} from './peer-http.js'
import {BUNDLE_CONTENT_TYPE, type BundleLink, type BundleResult} from './replica-bundle.js'
import {bundlePath, replicaPath} from './replica-paths.js'
import type {ReplicaRepository} from './replica-repository.js'

export const CHAIN_HEADER = 'x-replica-chain'
const MAX_CHAIN = 32
const NODE_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** What became of one peer of a chain: its copy sent and verified, already held, cut short, or failed. */
export interface ChainLink {
  node: string
  status: 'sent' | 'held' | 'incomplete' | 'failed'
  error?: string
}

/** The peers a copy must still be sent on to, from the X-Replica-Chain header (node ids, in order). */
export function parseChain(header: string | undefined): string[] {
  if (!header) return []
  const ids = header.split(',').map((id) => id.trim()).filter(Boolean)
  if (ids.length > MAX_CHAIN || !ids.every((id) => NODE_ID.test(id))) throw new BadRequest(`${CHAIN_HEADER} must list at most ${MAX_CHAIN} node ids`)
  return ids
}

/**
 * The signed request that posts a bundle of `uploadId` to `target`, asked to forward it to
 * `chain` (node ids, in order): the one builder for the sender and for every peer on the chain.
 */
export function bundleRequest(cluster: Cluster, uploadId: string, target: ClusterNode, chain: string[]): {url: URL; headers: Record<string, string>} {
  const path = bundlePath(uploadId)
  const headers = cluster.sign('POST', path, target, {'content-type': BUNDLE_CONTENT_TYPE, ...(chain.length > 0 ? {[CHAIN_HEADER]: chain.join(',')} : {})})
  return {url: new URL(path, target.url), headers}
}

/** The copy a chain forwards from stopped arriving before its last byte. */
export class SourceEndedShort extends Error {
  override name = 'SourceEndedShort'
}

/** Bytes a GrowingFile keeps in memory after they land, for followers that keep pace. */
const RECENT_BYTES = 8 << 20

/**
 * A partial file being written, which followers read as it grows: they wait for the writer's
 * word (`grew`, after each write lands; `end`), never poll. The last RECENT_BYTES that landed
 * are kept as the writer handed them (`kept`), so a follower that keeps pace sends them from
 * memory (on loopback, re-reading each MiB from the page cache and allocating a buffer for it
 * cost the middle peer more CPU than receiving it); one that falls behind reads the file.
 */
export class GrowingFile {
  private ended = false
  private waiters: Array<() => void> = []
  /** The last bytes that landed, in order, from file offset `recentStart` on. */
  private recent: Buffer[] = []
  private recentStart: number
  private recentBytes = 0

  private constructor(
    private readonly handle: FileHandle,
    /** Bytes of the file already on disk (the writer's start plus what it has written). */
    private readonly onDisk: () => number,
    readonly size: number
  ) {
    this.recentStart = onDisk()
  }

  /** Opens the partial for reading; the writer must have opened (or created) it already. */
  static async open(file: string, onDisk: () => number, size: number): Promise<GrowingFile> {
    return new GrowingFile(await open(file, 'r'), onDisk, size)
  }

  /** A chunk that just landed at the end of the file (in order, before `grew`); never changed afterwards. */
  kept(chunk: Buffer): void {
    this.recent.push(chunk)
    this.recentBytes += chunk.length
    while (this.recentBytes - this.recent[0]!.length >= RECENT_BYTES) {
      const dropped = this.recent.shift()!
      this.recentStart += dropped.length
      this.recentBytes -= dropped.length
    }
  }

  /** A write landed: followers waiting for bytes look again. */
  grew(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }

  /** The writer is done (complete or not): followers send what there is, then stop. */
  end(): void {
    this.ended = true
    this.grew()
  }

  /** The file's bytes from `from` to its size, waiting for them as they are written. */
  async *bytes(from: number, signal: AbortSignal): AsyncGenerator<Buffer> {
    let position = from
    while (position < this.size) {
      signal.throwIfAborted()
      const available = this.onDisk()
      if (position < available) {
        const chunk = this.fromMemory(position, available) ?? (await this.fromFile(position, available))
        position += chunk.length
        yield chunk
      } else if (this.ended) {
        throw new SourceEndedShort(`the copy arriving here ended at ${position} of ${this.size} bytes`)
      } else {
        await this.nextWrite(signal)
      }
    }
  }

  /** The kept bytes from `position` to the end of the chunk holding it (not past `available`), if still kept. */
  private fromMemory(position: number, available: number): Buffer | undefined {
    if (position < this.recentStart) return undefined
    let start = this.recentStart
    for (const chunk of this.recent) {
      const end = start + chunk.length
      if (position < end) return end > available ? undefined : chunk.subarray(position - start)
      start = end
    }
    return undefined
  }

  private async fromFile(position: number, available: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(Math.min(available - position, 1 << 20))
    const {bytesRead} = await this.handle.read(buffer, 0, buffer.length, position)
    if (bytesRead === 0) throw new Error('the partial file is shorter than its writer said')
    return buffer.subarray(0, bytesRead)
  }

  private nextWrite(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        signal.removeEventListener('abort', wake)
        resolve()
      }
      signal.addEventListener('abort', wake, {once: true})
      this.waiters.push(wake)
    })
  }

  close(): Promise<void> {
    return this.handle.close()
  }
}

/**
 * The partial file's writer (an fs.WriteStream) that says when each of its writes has landed
 * ('written', after `bytesWritten` counts it), so a GrowingFile's followers wake then, and hands
 * the bytes that landed to `landed` (the copy's hash: it then covers exactly what is on disk,
 * also when a cut drops the writes still buffered).
 */
export class PartialFileWriter extends (WriteStream as unknown as new (path: string, options: {flags: string; start: number; highWaterMark: number}) => WriteStream) {
  landed: (chunk: Buffer) => void = () => {}

  override _write(chunk: Buffer, encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    super._write(chunk, encoding, (error) => {
      if (!error) this.landed(chunk)
      done(error)
      if (!error) this.emit('written')
    })
  }

  override _writev(chunks: Array<{chunk: Buffer; encoding: BufferEncoding}>, done: (error?: Error | null) => void): void {
    super._writev!(chunks, (error) => {
      if (!error) for (const {chunk} of chunks) this.landed(chunk)
      done(error)
      if (!error) this.emit('written')
    })
  }
}

export interface ChainDeps {
  cluster: Cluster
  replicas: ReplicaRepository
}

/** The artifact's bytes from `offset` on, for a copy to a peer. */
export type OpenBody = (offset: number) => Promise<NodeJS.ReadableStream>

/**
 * Sends an artifact along `chain`: to its first peer, asked to forward it to the rest. A peer
 * that already holds it is recorded and passed over; one that cannot take it is skipped, and
 * the next one sent the artifact instead. One link per node of the chain, in order.
 */
export async function sendAlongChain(deps: ChainDeps, artifact: ArtifactRecord, chain: ClusterNode[], openBody: OpenBody, signal?: AbortSignal): Promise<ChainLink[]> {
  const links: ChainLink[] = []
  for (let i = 0; i < chain.length; i++) {
    const node = chain[i]!
    try {
      const answer = await copyTo(deps, artifact, node, chain.slice(i + 1), openBody, signal)
      links.push(...answer)
      if (answer[0]!.status !== 'held') return links
    } catch (error) {
      if (signal?.aborted) throw error
      links.push({node: node.id, status: 'failed', error: (error as Error).message})
    }
  }
  return links
}

/**
 * One peer: probe what it has, then send the rest, naming the peers it must forward to. The
 * links of `node` (and, when it took the copy, of everything after it).
 */
async function copyTo(deps: ChainDeps, artifact: ArtifactRecord, node: ClusterNode, rest: ClusterNode[], openBody: OpenBody, signal?: AbortSignal): Promise<ChainLink[]> {
  const path = replicaPath(artifact)
  const url = new URL(path, node.url)
  const probe = await peerRequest(url, {method: 'HEAD', headers: deps.cluster.sign('HEAD', path, node, {'x-artifact-sha256': artifact.sha256}), signal, idleMs: deps.cluster.peerIdleMs})
  probe.resume()
  if (probe.statusCode !== 200) throw new Error(`${node.id} answered ${probe.statusCode} to the replica probe`)
  if (probe.headers['x-replica-sha256'] === artifact.sha256) {
    await deps.replicas.record(artifact, node.id)
    return [{node: node.id, status: 'held'}]
  }
  const offset = Number(probe.headers['upload-offset'] ?? 0)
  const headers = deps.cluster.sign('PUT', path, node, {
    'x-artifact-sha256': artifact.sha256,
    ...(artifact.xxh128 ? {'x-artifact-xxh128': artifact.xxh128} : {}),
    'x-artifact-size': String(artifact.size),
    'upload-offset': String(offset),
    'content-length': String(artifact.size - offset),
    'content-type': 'application/octet-stream',
    ...(rest.length > 0 ? {[CHAIN_HEADER]: rest.map((n) => n.id).join(',')} : {}),
  })
  const cutShort = () => [node, ...rest].map((n) => ({node: n.id, status: 'incomplete' as const, error: 'the copy was cut short'}))
  let res
  try {
    res = await peerRequest(url, {method: 'PUT', headers, body: await openBody(offset), signal, idleMs: deps.cluster.peerIdleMs})
  } catch (error) {
    // This node's own copy is still arriving and ended short: the next ones cannot get more now.
    if (error instanceof SourceEndedShort) return cutShort()
    throw error
  }
  const text = await readText(res, 64 << 10)
  if (res.statusCode === 204) return cutShort()
  if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`${node.id} refused the replica (${res.statusCode}): ${text.trim().slice(0, 300)}`)
  return [{node: node.id, status: 'sent'}, ...chainAnswer(text, rest.map((n) => n.id))]
}

/** Forwards copies arriving at this node along the chain their sender named. */
export class ChainForwarder {
  constructor(private readonly deps: ChainDeps) {}

  /**
   * A bundle (replica-bundle.ts) arriving in `body`, sent on to the first live peer of `chain`
   * (asked to forward it to the rest) while this node reads it from `local`. The slower reader
   * sets the pace; a next peer that fails is let go and the bundle read on here. The links: one
   * per peer of the chain; those the bundle did not reach, the sender sends to itself.
   */
  forwardBundle(uploadId: string, chain: string[], body: Readable): {local: Readable; links: Promise<BundleLink[]>; abort(): void} {
    const local = new PassThrough({highWaterMark: 4 << 20})
    const down = new PassThrough({highWaterMark: 4 << 20})
    body.pipe(local)
    body.pipe(down)
    const letGo = () => {
      body.unpipe(down)
      down.resume()
    }
    const links = (async (): Promise<BundleLink[]> => {
      const live = new Map((await this.deps.cluster.registry.live()).map((n) => [n.id, n]))
      const next = live.get(chain[0]!)
      const unreached = (ids: string[], error: string) => ids.map((node) => ({node, error}))
      if (!next || next.id === this.deps.cluster.self.id) {
        letGo()
        return unreached(chain, `${chain[0]} is not a live peer`)
      }
      const rest = chain.slice(1)
      const {url, headers} = bundleRequest(this.deps.cluster, uploadId, next, rest)
      try {
        const res = await peerRequest(url, {method: 'POST', headers, body: down, idleMs: this.deps.cluster.peerIdleMs})
        const text = await readText(res, 4 << 20)
        if (res.statusCode !== 200) throw new Error(`${next.id} refused the bundle (${res.statusCode}): ${text.trim().slice(0, 300)}`)
        const result = JSON.parse(text) as BundleResult
        const reported = result.chain ?? []
        return [{node: next.id, stored: result.stored, rejected: result.rejected}, ...rest.map((id) => reported.find((l) => l.node === id) ?? {node: id, error: 'the chain did not reach it'})]
      } catch (error) {
        return unreached(chain, (error as Error).message)
      } finally {
        letGo()
      }
    })()
    return {local, links, abort: () => down.destroy(new Error('this node stopped reading the bundle'))}
  }

  async forward(artifact: ArtifactRecord, chain: string[], file: GrowingFile, signal: AbortSignal): Promise<ChainLink[]> {
    const live = new Map((await this.deps.cluster.registry.live()).map((n) => [n.id, n]))
    const reachable = chain.filter((id) => live.has(id) && id !== this.deps.cluster.self.id)
    const links = await sendAlongChain(this.deps, artifact, reachable.map((id) => live.get(id)!), async (offset) => Readable.from(file.bytes(offset, signal)), signal)
    return chain.map((id) => links.find((l) => l.node === id) ?? {node: id, status: 'failed', error: 'not a live peer'})
  }
}

/** The links a peer reported for the rest of its chain; a peer that said nothing of one did not send it. */
export function chainAnswer(text: string, rest: string[]): ChainLink[] {
  let reported: ChainLink[] = []
  try {
    const parsed = JSON.parse(text) as {chain?: ChainLink[]}
    if (Array.isArray(parsed.chain)) reported = parsed.chain.filter((l) => typeof l?.node === 'string' && typeof l?.status === 'string')
  } catch {
    // an empty or older answer: nothing was forwarded
  }
  return rest.map((id) => reported.find((l) => l.node === id) ?? {node: id, status: 'failed', error: 'the chain did not reach it'})
}
