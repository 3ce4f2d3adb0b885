/**
 * consumers/: one small file per kind of work, each building the handler for its kind from the
 * process's dependencies. This file plugs them into the registry; the runner (src/jobs) does
 * the rest (prefetch, retries, dead-lettering, shutdown).
 *
 * To add one: write consumers/<kind>.ts exporting `(deps: ConsumerDeps) => JobHandler<'<kind>'>`
 * and register it below. Until the media module lands there are none: transcode and snapshot
 * jobs stay queued (visible in the status API) until a process with a handler takes them.
 */
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import type {Config} from '../src/config/index.js'
import type {Replicator} from '../src/cluster/replication.js'
import {JobRegistry} from '../src/jobs/registry.js'
import {fanoutHandler} from './fanout.js'
import type {UploadRepository} from '../src/uploads/upload-repository.js'

export interface ConsumerDeps {
  config: Config
  db: DataSource
  log: Logger
  uploads: UploadRepository
  /** Present in processes that can reach the cluster's peers (fan-out). */
  replicator?: Replicator
}

export function consumerRegistry(deps: ConsumerDeps): JobRegistry {
  const registry = new JobRegistry()
  if (deps.replicator) registry.register('fanout', fanoutHandler(deps.replicator))
  // registry.register('transcode', transcodeHandler(deps))
  return registry
}
