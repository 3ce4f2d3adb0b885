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
import {JobRegistry} from '../src/jobs/registry.js'
import type {UploadRepository} from '../src/uploads/upload-repository.js'

export interface ConsumerDeps {
  config: Config
  db: DataSource
  log: Logger
  uploads: UploadRepository
}

export function consumerRegistry(_deps: ConsumerDeps): JobRegistry {
  const registry = new JobRegistry()
  // registry.register('transcode', transcodeHandler(deps))
  return registry
}
