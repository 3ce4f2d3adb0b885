/**
 * Fan-out: every artifact reaches every live peer (or REPLICATION_FACTOR of them), streamed,
 * verified on arrival by the wire hash (src/media/wire-hash.ts), idempotent (a peer that already holds a verified copy is
 * skipped), and resumable: a large artifact's peer reports how much of an interrupted copy it
 * has and only the rest is sent. A large artifact travels along a chain of the peers that lack
 * it (replica-chain.ts: sent once, each peer forwarding to the next), and directly to any peer
 * the chain did not deliver to, those copies fed by one read (shared-read.ts); small ones
 * travel in bundles (replica-bundle.ts), and a cut bundle loses only the entry in flight. This is what rsync did in the older design, minus
 * rsync's rescan of every file on every run: the database says what is where.
 */
import {createReadStream, readFileSync} from 'node:fs'
import {stat} from 'node:fs/promises'
import path from 'node:path'
import type {Logger} from 'pino'
import type {ArtifactRecord} from '../db/entities/artifact.js'
import {artifactUrlPath, uploadMediaDir} from '../media/artifact-files.js'
import type {Cluster} from './cluster.js'
import type {ClusterNode} from './node-registry.js'
import {peerRequest, readText} from './peer-http.js'
import {BUNDLE_FILE_LIMIT, BundleWriter, groupIntoBundles, type BundleResult} from './replica-bundle.js'
import {bundleRequest, sendAlongChain, type ChainLink} from './replica-chain.js'
import type {ReplicaRepository} from './replica-repository.js'
import {SharedRead} from './shared-read.js'

export interface ReplicationReport {
  /** Live peers (this node left out): none means there was no one to copy to. */
  peers: number
  sent: number
  skipped: number
  failed: Array<{path: string; node: string; error: string}>
}

export class Replicator {
  constructor(
    private readonly cluster: Cluster,
    private readonly replicas: ReplicaRepository,
    /** `chain`: a large artifact goes along a chain of the peers that lack it (default), else to each directly. */
    private readonly options: {dataDir: string; factor: number; chain?: boolean; concurrency?: number},
    private readonly log: Logger
  ) {}

  /** Replicates every artifact of an upload to the peers that lack it. */
  async replicateUpload(uploadId: string, signal?: AbortSignal): Promise<ReplicationReport> {
    const report: ReplicationReport = {peers: 0, sent: 0, skipped: 0, failed: []}
    if (!this.cluster.enabled) return report
    const live = await this.cluster.registry.live()
    report.peers = live.filter((n) => n.id !== this.cluster.self.id).length
    const artifacts = await this.replicas.artifacts.list(uploadId)
    const holdersOf = await this.replicas.holdersByArtifact(artifacts)
    const tasks: Array<() => Promise<void>> = []
    // Small artifacts travel in bundles, grouped by where they come from and which peers lack them.
    const bundles = new Map<string, {source: ClusterNode; targets: ClusterNode[]; artifacts: ArtifactRecord[]}>()
    for (const artifact of artifacts) {
      const holders = holdersOf.get(artifact.id)!
      const liveHolders = live.filter((n) => holders.includes(n.id))
      const source = liveHolders.find((n) => n.id === this.cluster.self.id) ?? liveHolders[0]
      if (!source) continue
      const wanted = this.options.factor > 0 ? this.options.factor + 1 : live.length
      const missing = live.filter((n) => !holders.includes(n.id)).slice(0, Math.max(0, wanted - liveHolders.length))
      report.skipped += liveHolders.length - 1
      if (missing.length === 0) continue
      if (artifact.size <= BUNDLE_FILE_LIMIT) {
        const key = [source.id, ...missing.map((n) => n.id)].join('\n')
        if (!bundles.has(key)) bundles.set(key, {source, targets: missing, artifacts: []})
        bundles.get(key)!.artifacts.push(artifact)
        continue
      }
      tasks.push(() => this.pushLarge(artifact, source, missing, report, signal))
    }
    for (const {source, targets, artifacts: small} of bundles.values()) {
      for (const bundle of groupIntoBundles(small)) tasks.push(() => this.sendBundle(uploadId, bundle, source, targets, report, signal))
    }
    await runAll(tasks, this.options.concurrency ?? 8)
    if (report.sent || report.failed.length) this.log.info({uploadId, ...report, failed: report.failed.length}, 'replication pass')
    return report
  }

  /**
   * One bundle to `targets`: along a chain (the first forwards it to the rest as it arrives),
   * then directly to each peer the chain did not deliver to; without the chain, to each at once.
   */
  private async sendBundle(uploadId: string, bundle: ArtifactRecord[], source: ClusterNode, targets: ClusterNode[], report: ReplicationReport, signal?: AbortSignal): Promise<void> {
    const count = (target: string, result: BundleResult) => {
      report.sent += result.stored.length
      for (const {path, reason} of result.rejected) report.failed.push({path, node: target, error: reason})
    }
    const fail = (target: string, error: string) => {
      for (const artifact of bundle) report.failed.push({path: artifact.path, node: target, error})
    }
    let direct = targets
    if (this.options.chain !== false && targets.length > 1) {
      const [first, ...rest] = targets as [ClusterNode, ...ClusterNode[]]
      const [answer] = await this.pushBundle(uploadId, bundle, source, [first], signal, rest)
      if (answer!.status === 'fulfilled') {
        count(first.id, answer!.value)
        const links = answer!.value.chain ?? []
        direct = rest.filter((target) => {
          const link = links.find((l) => l.node === target.id)
          if (link && 'stored' in link) count(target.id, link)
          return !link || !('stored' in link)
        })
      } else {
        direct = rest
        fail(first.id, (answer!.reason as Error).message)
      }
    }
    const results = await this.pushBundle(uploadId, bundle, source, direct, signal)
    results.forEach((result, i) => (result.status === 'fulfilled' ? count(direct[i]!.id, result.value) : fail(direct[i]!.id, (result.reason as Error).message)))
  }

  /**
   * Sends small artifacts the database says `targets` lack, one bundle request per target, each
   * artifact read once for all of them. No probe first: a copy a peer holds without a row is
   * simply written again. Each peer answers which entries it stored (and, with a `chain`, what
   * the peers it forwarded the bundle to stored).
   */
  private async pushBundle(uploadId: string, artifacts: ArtifactRecord[], source: ClusterNode, targets: ClusterNode[], signal?: AbortSignal, chain: ClusterNode[] = []): Promise<Array<PromiseSettledResult<BundleResult>>> {
    const sends = targets.map((target) => {
      const writer = new BundleWriter()
      const {url, headers} = bundleRequest(this.cluster, uploadId, target, chain.map((n) => n.id))
      const answer = (async () => {
        try {
          const res = await peerRequest(url, {method: 'POST', headers, body: writer.stream, signal, idleMs: this.cluster.peerIdleMs})
          const text = await readText(res, 1 << 20)
          if (res.statusCode !== 200) throw new Error(`${target.id} refused the bundle (${res.statusCode}): ${text.trim().slice(0, 500)}`)
          return JSON.parse(text) as BundleResult
        } finally {
          // An answer before the last entry (a refusal) or a dead connection: stop feeding this peer.
          writer.abort(new Error(`${target.id} stopped reading the bundle`))
        }
      })()
      answer.catch(() => {}) // settled below, with the others; never an unhandled rejection meanwhile
      return {writer, answer, open: true}
    })
    try {
      for (const artifact of artifacts) {
        const open = sends.filter((s) => s.open)
        if (open.length === 0) break
        const data = await this.readSmall(artifact, source, signal)
        await Promise.all(open.map((s) => s.writer.add(artifact.path, data).catch(() => void (s.open = false))))
      }
      for (const send of sends) if (send.open) send.writer.finish()
    } catch (error) {
      for (const send of sends) send.writer.abort(error as Error)
    }
    return Promise.allSettled(sends.map((s) => s.answer))
  }

  /** A small artifact's bytes (at most BUNDLE_FILE_LIMIT), from this node's disk or from `source`. */
  private async readSmall(artifact: ArtifactRecord, source: ClusterNode, signal?: AbortSignal): Promise<Buffer> {
    let data: Buffer
    if (source.id === this.cluster.self.id) {
      // Synchronously, like the receiver's writes (see ReplicaReceiver.place): small, and cheaper so.
      data = readFileSync(this.localPath(artifact))
    } else {
      const chunks: Buffer[] = []
      let length = 0
      for await (const chunk of await this.openSource(artifact, source, 0, signal)) {
        length += (chunk as Buffer).length
        if (length > artifact.size) throw new Error(`${source.id} sent more than the ${artifact.size} bytes of ${artifact.path}`)
        chunks.push(chunk as Buffer)
      }
      data = Buffer.concat(chunks)
    }
    if (data.length !== artifact.size) throw new Error(`${source.id}'s copy of ${artifact.path} has ${data.length} bytes, expected ${artifact.size}`)
    return data
  }

  /**
   * One large artifact to `targets`: along a chain of them (unless REPLICATION_CHAIN is off),
   * then directly to each peer the chain did not deliver to (a peer that failed mid-chain, or
   * one that could not be reached through it), all at once from one read of the artifact.
   */
  private async pushLarge(artifact: ArtifactRecord, source: ClusterNode, targets: ClusterNode[], report: ReplicationReport, signal?: AbortSignal): Promise<void> {
    const deps = {cluster: this.cluster, replicas: this.replicas}
    const open = (offset: number) => this.openSource(artifact, source, offset, signal)
    const count = (link: ChainLink | undefined) => {
      if (link?.status === 'sent') report.sent++
      else if (link?.status === 'held') report.skipped++
      else return false
      return true
    }
    const chained = this.options.chain !== false && targets.length > 1
    const links = chained ? await sendAlongChain(deps, artifact, targets, open, signal) : []
    const direct = targets.filter((target) => !count(links.find((l) => l.node === target.id)))
    const read = new SharedRead(open, direct.length)
    await Promise.all(
      direct.map(async (target) => {
        const share = read.share()
        try {
          const [link] = await sendAlongChain(deps, artifact, [target], share.open, signal)
          if (!count(link)) report.failed.push({path: artifact.path, node: target.id, error: link?.error ?? links.find((l) => l.node === target.id)?.error ?? 'not sent'})
        } finally {
          share.done()
        }
      })
    )
  }

  private localPath(artifact: ArtifactRecord): string {
    return path.join(uploadMediaDir(this.options.dataDir, artifact.uploadId), ...artifact.path.split('/'))
  }

  /** The artifact's bytes from `offset`: the local file, or streamed from a node that holds it. */
  private async openSource(artifact: ArtifactRecord, source: ClusterNode, offset: number, signal?: AbortSignal): Promise<NodeJS.ReadableStream> {
    if (source.id === this.cluster.self.id) {
      const file = this.localPath(artifact)
      const {size} = await stat(file)
      if (size !== artifact.size) throw new Error(`local copy of ${artifact.path} has ${size} bytes, expected ${artifact.size}`)
      return createReadStream(file, {start: offset, highWaterMark: 1 << 20})
    }
    const mediaPath = `/media/${artifactUrlPath(artifact)}`
    const res = await peerRequest(new URL(mediaPath, source.url), {method: 'GET', headers: {...this.cluster.sign('GET', mediaPath, source), range: `bytes=${offset}-`}, signal, idleMs: this.cluster.peerIdleMs})
    if (res.statusCode !== 206 && !(res.statusCode === 200 && offset === 0)) {
      res.resume()
      throw new Error(`${source.id} answered ${res.statusCode} for ${artifact.path}`)
    }
    return res
  }
}

/** Runs tasks with at most `limit` at once. */
async function runAll(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!()
  }
  await Promise.all(Array.from({length: Math.min(limit, tasks.length)}, worker))
}
