/**
 * Issue 4: the completion pipeline against RabbitMQ and PostgreSQL (both must be running).
 * - completion-to-published latency (p50, p99): from the call that completes an upload (its
 *   transaction writes the outbox row) until a subscriber bound to the events exchange receives
 *   upload.completed; the relay wakes on LISTEN/NOTIFY. Baseline: a bare amqplib publish with
 *   confirm to a consumer on the same broker. Goal: p99 < 50 ms.
 * - messages/s through the runner (no-op handler: validate, record the attempt, commit the
 *   outcome, ack) against a bare amqplib publish/consume loop with manual acks, same prefetch.
 * Bounded: BENCH_PIPELINE_SAMPLES latency samples (default 200), BENCH_PIPELINE_MESSAGES (1000).
 */
import amqp from 'amqplib'
import pino from 'pino'
import {TEST_AMQP_URL, TEST_DATABASE_URL} from '../test/support/services.js'
import {completedUpload, openTestDatabase, randomId, removeTopology, testPrefix, waitFor} from '../test/support/pipeline-support.js'
import {AmqpBroker} from '../src/jobs/amqp-broker.js'
import {JobRepository} from '../src/jobs/job-repository.js'
import {jobMessage} from '../src/jobs/messages.js'
import {Outcome} from '../src/jobs/outcome.js'
import {OutboxRelay} from '../src/jobs/outbox-relay.js'
import {JobRegistry} from '../src/jobs/registry.js'
import {JOB_POLICIES, retryDelays} from '../src/jobs/job-policies.js'
import {JobRunner} from '../src/jobs/runner.js'
import {topology} from '../src/jobs/topology.js'
import {UploadRepository} from '../src/uploads/upload-repository.js'
import {UploadStatus} from '../src/uploads/upload-status.js'
import type {BenchRecord} from './lib/results.js'
import {percentile} from './lib/stats.js'
import {progress, runSuite} from './lib/suite.js'

const SUITE = 'pipeline'
const SAMPLES = Number(process.env.BENCH_PIPELINE_SAMPLES ?? 200)
const MESSAGES = Number(process.env.BENCH_PIPELINE_MESSAGES ?? 1000)
const PREFETCH = 16
const reproduce = 'npm run bench:pipeline'
const log = pino({level: 'warn'})

function record(name: string, ours: number, baseline: number, unit: string, better: 'higher' | 'lower', baselineName: string, goal?: BenchRecord['goal']): BenchRecord {
  return {suite: SUITE, name, ours, baseline, unit, ratio: baseline === 0 ? null : ours / baseline, better, baselineName, runs: 1, reproduce, ...(goal ? {goal} : {})}
}

/** A subscriber on the events exchange that resolves waiters by upload id. */
async function eventWaiter(channel: amqp.Channel, exchange: string) {
  const {queue} = await channel.assertQueue('', {exclusive: true, autoDelete: true})
  await channel.bindQueue(queue, exchange, 'upload.completed')
  const waiting = new Map<string, (at: number) => void>()
  await channel.consume(queue, (m) => {
    if (!m) return
    const at = performance.now()
    waiting.get((JSON.parse(m.content.toString()) as {uploadId: string}).uploadId)?.(at)
  }, {noAck: true})
  return (uploadId: string) => new Promise<number>((resolve) => waiting.set(uploadId, resolve))
}

async function ourLatency(): Promise<number[]> {
  const database = await openTestDatabase()
  const t = topology(testPrefix(), retryDelays(1000, 3), 10)
  const broker = new AmqpBroker({url: TEST_AMQP_URL, topology: t, nodeId: 'bench', log})
  await broker.start()
  await broker.connected()
  const relay = new OutboxRelay(database.db, broker, new JobRepository(database.db), log, {pollIntervalMs: 1000, listen: {url: TEST_DATABASE_URL, schema: database.schema}})
  await relay.start()
  const connection = await amqp.connect(TEST_AMQP_URL)
  const channel = await connection.createChannel()
  try {
    const arrival = await eventWaiter(channel, t.eventsExchange)
    const uploads = new UploadRepository(database.db)
    await completedUpload(database.db) // warm-up
    const samples: number[] = []
    for (let i = 0; i < SAMPLES; i++) {
      const id = randomId()
      await uploads.insert({id, owner: null, filename: null, filetype: null, metadata: {}, size: 1, bytesReceived: 1, status: UploadStatus.Uploading, nodeId: 'bench', sha256: null, md5: null, failureReason: null, expiresAt: null, completedAt: null})
      const arrived = arrival(id)
      const started = performance.now()
      await uploads.complete(id, {sha256: 'c'.repeat(64), md5: 'd'.repeat(32)})
      samples.push((await arrived) - started)
    }
    return samples
  } finally {
    await connection.close()
    await relay.stop()
    await broker.close()
    await removeTopology(t)
    await database.drop()
  }
}

async function bareLatency(): Promise<number[]> {
  const connection = await amqp.connect(TEST_AMQP_URL)
  const publisher = await connection.createConfirmChannel()
  const consumer = await connection.createChannel()
  const exchange = `${testPrefix()}.bare-events`
  await publisher.assertExchange(exchange, 'topic', {durable: true})
  try {
    const arrival = await eventWaiter(consumer, exchange)
    const samples: number[] = []
    for (let i = 0; i < SAMPLES; i++) {
      const id = randomId()
      const arrived = arrival(id)
      const started = performance.now()
      publisher.publish(exchange, 'upload.completed', Buffer.from(JSON.stringify({uploadId: id})), {persistent: true})
      await publisher.waitForConfirms()
      samples.push((await arrived) - started)
    }
    return samples
  } finally {
    await publisher.deleteExchange(exchange)
    await connection.close()
  }
}

async function ourThroughput(): Promise<number> {
  const database = await openTestDatabase()
  const t = topology(testPrefix(), retryDelays(1000, 3), 10)
  const broker = new AmqpBroker({url: TEST_AMQP_URL, topology: t, nodeId: 'bench', log})
  await broker.start()
  await broker.connected()
  let handled = 0
  const registry = new JobRegistry().register('snapshot', async () => {
    handled++
    return Outcome.succeeded()
  })
  const jobs = new JobRepository(database.db)
  const runner = new JobRunner({broker, jobs, registry, policies: {kinds: {...JOB_POLICIES, snapshot: {...JOB_POLICIES.snapshot, concurrency: PREFETCH}}, retryDelays: retryDelays(1000, 3)}, nodeId: 'bench', log})
  try {
    const started = performance.now()
    await runner.start(['snapshot'])
    await Promise.all(Array.from({length: MESSAGES}, () => broker.publishJob(jobMessage('snapshot', randomId()))))
    await waitFor('every job to succeed', async () => {
      if (handled < MESSAGES) return false
      const [row] = (await database.db.query(`SELECT count(*)::int AS n FROM jobs WHERE status = 'succeeded'`)) as Array<{n: number}>
      return row!.n >= MESSAGES && runner.activeJobs === 0
    }, 90_000)
    return MESSAGES / ((performance.now() - started) / 1000)
  } finally {
    await runner.close(5000)
    await broker.close()
    await removeTopology(t)
    await database.drop()
  }
}

async function bareThroughput(): Promise<number> {
  const connection = await amqp.connect(TEST_AMQP_URL)
  const publisher = await connection.createConfirmChannel()
  const consumer = await connection.createChannel()
  const queue = `${testPrefix()}.bare-work`
  await publisher.assertQueue(queue, {durable: true, arguments: {'x-queue-type': 'quorum'}})
  await consumer.prefetch(PREFETCH)
  try {
    const started = performance.now()
    let acked = 0
    const done = new Promise<void>((resolve) => {
      void consumer.consume(queue, (m) => {
        if (!m) return
        JSON.parse(m.content.toString())
        consumer.ack(m)
        if (++acked === MESSAGES) resolve()
      })
    })
    for (let i = 0; i < MESSAGES; i++) publisher.publish('', queue, Buffer.from(JSON.stringify(jobMessage('snapshot', randomId()))), {persistent: true})
    await publisher.waitForConfirms()
    await done
    return MESSAGES / ((performance.now() - started) / 1000)
  } finally {
    await publisher.deleteQueue(queue)
    await connection.close()
  }
}

await runSuite(SUITE, async () => {
  progress(SUITE, `latency: ${SAMPLES} completions through the outbox relay`)
  const ours = await ourLatency()
  progress(SUITE, `latency: ${SAMPLES} bare amqplib publishes`)
  const bare = await bareLatency()
  progress(SUITE, `throughput: ${MESSAGES} jobs through the runner`)
  const oursRate = await ourThroughput()
  progress(SUITE, `throughput: ${MESSAGES} messages through a bare amqplib loop`)
  const bareRate = await bareThroughput()
  const baselineLatency = 'bare amqplib publish (confirm) -> consume'
  return {
    settings: {samples: SAMPLES, messages: MESSAGES, prefetch: PREFETCH},
    records: [
      record('completion-to-published p50', percentile(ours, 50), percentile(bare, 50), 'ms', 'lower', baselineLatency),
      record('completion-to-published p99', percentile(ours, 99), percentile(bare, 99), 'ms', 'lower', baselineLatency, {oursAtMost: 50, text: 'p99 < 50 ms'}),
      record('jobs through the runner', oursRate, bareRate, 'msg/s', 'higher', 'bare amqplib publish/consume loop (manual ack)'),
    ],
    notes: ['Ours includes two PostgreSQL transactions per job (start, outcome + job event); the baseline does no database work.'],
  }
})
process.exit(process.exitCode ?? 0)
