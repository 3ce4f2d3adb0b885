/**
 * consumers/: one small file per kind of work, each building the handler for its kind (and,
 * where a dead job leaves something to set right, its onDead hook) from the process's
 * dependencies. This file plugs them into the registry; the runner (src/jobs) does the rest
 * (prefetch, retries, dead-lettering, shutdown).
 *
 * To add one: write consumers/<kind>.ts exporting `(deps: ConsumerDeps) => JobHandler<'<kind>'>`
 * and register it below.
 */
import {JobRegistry} from '../src/jobs/registry.js'
import type {ConsumerDeps} from './consumer-deps.js'
import {fanoutHandler} from './fanout.js'
import {snapshotHandler} from './snapshot.js'
import {transcodeHandler, transcodeOnDead} from './transcode.js'
import {webhookHandler} from './webhook.js'

export type {ConsumerDeps} from './consumer-deps.js'

export function consumerRegistry(deps: ConsumerDeps): JobRegistry {
  const registry = new JobRegistry()
  registry.register('transcode', transcodeHandler(deps), transcodeOnDead(deps))
  registry.register('snapshot', snapshotHandler(deps))
  if (deps.replicator) registry.register('fanout', fanoutHandler(deps.replicator))
  if (deps.config.webhookUrl && deps.config.webhookSecret) registry.register('webhook', webhookHandler(deps, deps.config.webhookUrl, deps.config.webhookSecret))
  return registry
}
