/**
 * Fan-out: every artifact reaches every live peer (or REPLICATION_FACTOR of them), streamed,
 * verified by sha256 on arrival, idempotent (a peer that already holds a verified copy is
 * skipped), and resumable (a peer reports how much of an interrupted copy it has, and only the
 * rest is sent). This is what rsync did in the older design, minus rsync's rescan of every
 * file on every run: the database says what is where.
 */
import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import path from 'node:path'
import type {Logger} from 'pino'
import type {ArtifactRecord} from '../db/entities/artifact.js'
import {uploadMediaDir} from '../media/artifact-files.js'
import type {Cluster} from './cluster.js'
import type {ClusterNode} from './node-registry.js'
import {peerRequest, readText} from './peer-http.js'
import type {ReplicaRepository} from './replica-repository.js'

export const REPLICA_PREFIX = '/internal/replicas/'

export interface ReplicationReport {
  sent: number
  skipped: number
  failed: Array<{path: string; node: string; error: string}>
}

export class Replicator {
  constructor(
    private readonly cluster: Cluster,
    private readonly replicas: ReplicaRepository,
    private readonly options: {dataDir: string; factor: number; concurrency?: number},
    private readonly log: Logger
  ) {}

  /** Replicates every artifact of an upload to the peers that lack it. */
  async replicateUpload(uploadId: string, signal?: AbortSignal): Promise<ReplicationReport> {
    const report: ReplicationReport = {sent: 0, skipped: 0, failed: []}
    if (!this.cluster.enabled) return report
    const live = await this.cluster.registry.live()
    const artifacts = await this.replicas.listArtifacts(uploadId)
    const holdersOf = await this.replicas.holdersByArtifact(artifacts)
    const tasks: Array<() => Promise<void>> = []
    for (const artifact of artifacts) {
      const holders = holdersOf.get(artifact.id)!
      const liveHolders = live.filter((n) => holders.includes(n.id))
      const source = liveHolders.find((n) => n.id === this.cluster.self.id) ?? liveHolders[0]
      if (!source) continue
      const wanted = this.options.factor > 0 ? this.options.factor + 1 : live.length
      const missing = live.filter((n) => !holders.includes(n.id)).slice(0, Math.max(0, wanted - liveHolders.length))
      report.skipped += liveHolders.length - 1
      for (const target of missing) {
        tasks.push(async () => {
          try {
            if (await this.push(artifact, source, target, signal)) report.sent++
            else report.skipped++
          } catch (error) {
            report.failed.push({path: artifact.path, node: target.id, error: (error as Error).message})
          }
        })
      }
    }
    await runAll(tasks, this.options.concurrency ?? 8)
    if (report.sent || report.failed.length) this.log.info({uploadId, ...report, failed: report.failed.length}, 'replication pass')
    return report
  }

  /** Sends one artifact to one peer; false when the peer already had it verified. */
  private async push(artifact: ArtifactRecord, source: ClusterNode, target: ClusterNode, signal?: AbortSignal): Promise<boolean> {
    const replicaPath = `${REPLICA_PREFIX}${encodeURIComponent(artifact.uploadId)}/${artifact.path.split('/').map(encodeURIComponent).join('/')}`
    const url = new URL(replicaPath, target.url)
    const probe = await peerRequest(url, {method: 'HEAD', headers: this.cluster.sign('HEAD', replicaPath, {'x-artifact-sha256': artifact.sha256}), signal})
    probe.resume()
    if (probe.statusCode !== 200) throw new Error(`${target.id} answered ${probe.statusCode} to the replica probe`)
    if (probe.headers['x-replica-sha256'] === artifact.sha256) {
      await this.replicas.record(artifact, target.id)
      return false
    }
    const offset = Number(probe.headers['upload-offset'] ?? 0)
    const body = await this.openSource(artifact, source, offset, signal)
    const headers = this.cluster.sign('PUT', replicaPath, {
      'x-artifact-sha256': artifact.sha256,
      'x-artifact-size': String(artifact.size),
      'upload-offset': String(offset),
      'content-length': String(artifact.size - offset),
      'content-type': 'application/octet-stream',
    })
    const res = await peerRequest(url, {method: 'PUT', headers, body, signal})
    const text = await readText(res)
    if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`${target.id} refused the replica (${res.statusCode}): ${text.trim()}`)
    return true
  }

  /** The artifact's bytes from `offset`: the local file, or streamed from a node that holds it. */
  private async openSource(artifact: ArtifactRecord, source: ClusterNode, offset: number, signal?: AbortSignal): Promise<NodeJS.ReadableStream> {
    if (source.id === this.cluster.self.id) {
      const file = path.join(uploadMediaDir(this.options.dataDir, artifact.uploadId), ...artifact.path.split('/'))
      const {size} = await stat(file)
      if (size !== artifact.size) throw new Error(`local copy of ${artifact.path} has ${size} bytes, expected ${artifact.size}`)
      return createReadStream(file, {start: offset, highWaterMark: 1 << 20})
    }
    const mediaPath = `/media/${encodeURIComponent(artifact.uploadId)}/${artifact.path.split('/').map(encodeURIComponent).join('/')}`
    const res = await peerRequest(new URL(mediaPath, source.url), {method: 'GET', headers: {...this.cluster.sign('GET', mediaPath), range: `bytes=${offset}-`}, signal})
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
