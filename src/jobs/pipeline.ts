/**
 * Puts the completion pipeline together for one process: the broker (RabbitMQ when AMQP_URL is
 * set, in-process otherwise), the outbox relay, and the runner for the kinds this process
 * consumes. Stopped in order: runner (finish in-flight work), relay (publish what that work
 * wrote), broker.
 */
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import type {Config} from '../config/index.js'
import {AmqpBroker} from './amqp-broker.js'
import type {Broker} from './broker.js'
import {JOB_KINDS, type JobKind} from './job-kinds.js'
import {JobRepository} from './job-repository.js'
import {MemoryBroker} from './memory-broker.js'
import {jobMessage} from './messages.js'
import {OutboxRelay} from './outbox-relay.js'
import {resolvePolicies, type JobPolicies} from './job-policies.js'
import type {JobRegistry} from './registry.js'
import {JobRunner} from './runner.js'
import {topology} from './topology.js'

type PipelineConfig = Pick<
  Config,
  'amqpUrl' | 'queuePrefix' | 'jobPrefetch' | 'jobMaxAttempts' | 'jobRetryDelay' | 'jobDeliveryLimit' | 'outboxPollInterval' | 'nodeId' | 'databaseUrl' | 'databaseSchema'
> &
  Partial<Pick<Config, 'webhookUrl'>>

export interface PipelineOptions {
  config: PipelineConfig
  db: DataSource
  log: Logger
  registry: JobRegistry
  /** Publish the outbox from this process. */
  relay: boolean
  /** Kinds to consume (those with a handler). Default: all with the in-process broker, none with RabbitMQ. */
  kinds?: readonly JobKind[]
}

export interface Pipeline {
  broker: Broker
  jobs: JobRepository
  relay: OutboxRelay | undefined
  runner: JobRunner
  consumedKinds: JobKind[]
  /** Idempotent; in-flight jobs get until the deadline to finish, then are handed back. */
  close(deadlineMs: number): Promise<void>
}

/** The broker, whose delay queues (RabbitMQ) are the rungs of the policies' ladder. */
export function createBroker(config: PipelineConfig, policies: Pick<JobPolicies, 'retryDelays'>, log: Logger): Broker {
  if (!config.amqpUrl) return new MemoryBroker({deliveryLimit: config.jobDeliveryLimit})
  return new AmqpBroker({
    url: config.amqpUrl,
    topology: topology(config.queuePrefix, policies.retryDelays, config.jobDeliveryLimit),
    nodeId: config.nodeId,
    log: log.child({component: 'amqp'}),
  })
}

export async function startPipeline(options: PipelineOptions): Promise<Pipeline> {
  const {config, db, log, registry} = options
  // Resolved once, here: the runner decides every retry with them, the broker's delays follow them.
  const policies = resolvePolicies(config)
  const broker = createBroker(config, policies, log)
  await broker.start()
  const jobs = new JobRepository(db)
  const runner = new JobRunner({broker, jobs, registry, policies, nodeId: config.nodeId, log: log.child({component: 'runner'})})
  if (broker instanceof MemoryBroker) await requeuePending(jobs, broker, log)
  const consumedKinds = await runner.start(options.kinds ?? (broker.name === 'memory' ? JOB_KINDS : []))
  const relay = options.relay
    ? new OutboxRelay(db, broker, jobs, log.child({component: 'outbox'}), {
        pollIntervalMs: config.outboxPollInterval,
        webhooks: Boolean(config.webhookUrl),
        ...(config.databaseUrl ? {listen: {url: config.databaseUrl, schema: config.databaseSchema ?? 'public'}} : {}),
      })
    : undefined
  await relay?.start()
  log.info({broker: broker.name, consumes: consumedKinds, relay: Boolean(relay)}, 'job pipeline started')

  let closing: Promise<void> | undefined
  const close = (deadlineMs: number) =>
    (closing ??= (async () => {
      for (const step of [() => runner.close(deadlineMs), () => relay?.stop(), () => broker.close()]) {
        try {
          await step()
        } catch (error) {
          log.error({err: error}, 'job pipeline shutdown step failed')
        }
      }
    })())
  return {broker, jobs, relay, runner, consumedKinds, close}
}

/**
 * The in-process broker forgets everything on exit: queue again what the jobs table says is owed,
 * as redeliveries (a job still `running` was this process's, and its worker died with it).
 */
async function requeuePending(jobs: JobRepository, broker: MemoryBroker, log: Logger): Promise<void> {
  const pending = await jobs.pending()
  for (const job of pending) broker.redeliver(jobMessage(job.kind, job.uploadId))
  if (pending.length > 0) log.info({jobs: pending.length}, 'queued pending jobs again from the jobs table')
}
