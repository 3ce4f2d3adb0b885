/**
 * consumers/: one small file per kind of work, each building the handler for its kind from the
 * process's dependencies. This file plugs them into the registry; the runner (src/jobs) does
 * the rest (prefetch, retries, dead-lettering, shutdown).
 *
 * To add one: write consumers/<kind>.ts exporting `(deps: ConsumerDeps) => JobHandler<'<kind>'>`
 * and register it below.
 */
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import type {Config} from '../src/config/index.js'
import {randomBytes} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir, rm} from 'node:fs/promises'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import type {Cluster} from '../src/cluster/cluster.js'
import type {Replicator} from '../src/cluster/replication.js'
import {JobRegistry} from '../src/jobs/registry.js'
import {fanoutHandler} from './fanout.js'
import {snapshotHandler} from './snapshot.js'
import {transcodeHandler} from './transcode.js'
import type {UploadRepository} from '../src/uploads/upload-repository.js'

export interface ConsumerDeps {
  config: Config
  db: DataSource
  log: Logger
  uploads: UploadRepository
  /** Present in processes that can reach the cluster's peers (fan-out, originals held elsewhere). */
  replicator?: Replicator
  cluster?: Cluster
}

/**
 * An upload's bytes as a local file for ffmpeg: this node's own file, or a temporary copy
 * fetched from the node that holds it (with several nodes, a job may run anywhere).
 */
export function uploadSource(deps: ConsumerDeps) {
  return async (upload: {id: string; nodeId: string}) => {
    const local = path.join(deps.config.dataDir, 'uploads', upload.id)
    if (upload.nodeId === deps.config.nodeId || !deps.cluster?.enabled) return {path: local, release: async () => {}}
    const dir = path.join(deps.config.dataDir, 'tmp')
    await mkdir(dir, {recursive: true})
    const copy = path.join(dir, `.source-${upload.id}-${randomBytes(4).toString('hex')}`)
    try {
      await pipeline(await deps.cluster.openUploadContent(upload.nodeId, upload.id), createWriteStream(copy))
    } catch (error) {
      await rm(copy, {force: true})
      throw error
    }
    return {path: copy, release: () => rm(copy, {force: true})}
  }
}

export function consumerRegistry(deps: ConsumerDeps): JobRegistry {
  const registry = new JobRegistry()
  registry.register('transcode', transcodeHandler(deps))
  registry.register('snapshot', snapshotHandler(deps))
  if (deps.replicator) registry.register('fanout', fanoutHandler(deps.replicator))
  // registry.register('transcode', transcodeHandler(deps))
  return registry
}
