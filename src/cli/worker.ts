/**
 * `ingest worker`: consumes jobs of the given kinds from RabbitMQ, with no HTTP server. It also
 * relays the outbox (the job events its own work writes). Needs AMQP_URL: the in-process broker
 * cannot be shared between processes.
 */
import type {Logger} from 'pino'
import {ConfigError, type Config} from '../config/index.js'
import {openDatabase} from '../db/database.js'
import type {JobKind} from '../jobs/job-kinds.js'
import {startPipeline, type Pipeline} from '../jobs/pipeline.js'
import type {JobRegistry} from '../jobs/registry.js'
import type {DataSource} from 'typeorm'
import {checkWebhookTarget} from '../webhooks/webhook-target.js'

export interface RunningWorker {
  pipeline: Pipeline
  /** Stops taking jobs, lets in-flight ones finish (up to shutdownTimeout), closes everything. */
  close(): Promise<void>
}

export async function startWorker(config: Config, log: Logger, options: {registry: (db: DataSource) => JobRegistry; kinds: readonly JobKind[]}): Promise<RunningWorker> {
  if (!config.amqpUrl) throw new ConfigError('ingest worker needs AMQP_URL; without RabbitMQ, `npm start` runs the jobs in the node itself')
  if (config.webhookUrl) await checkWebhookTarget(config.webhookUrl, config.webhookAllowPrivate)
  const db = await openDatabase(config)
  const pipeline = await startPipeline({config, db, log, registry: options.registry(db), relay: true, kinds: options.kinds})
  if (pipeline.consumedKinds.length === 0) log.warn({kinds: options.kinds}, 'no handler is registered for any of these kinds: this worker will take no jobs')
  log.info({nodeId: config.nodeId, kinds: pipeline.consumedKinds}, 'worker started')
  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      await pipeline.close(config.shutdownTimeout)
      await db.destroy()
      log.info('worker stopped')
    })())
  return {pipeline, close}
}
