/**
 * The consumer runner against each broker adapter: RabbitMQ (real, at TEST_AMQP_URL) and the
 * in-process one. Same handler, same expectations. Handlers are defined here; each test owns
 * an upload id and tells the handler how to behave for it.
 */
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import pino from 'pino'
import {AmqpBroker} from '../src/jobs/amqp-broker.js'
import type {Broker} from '../src/jobs/broker.js'
import {JobRepository} from '../src/jobs/job-repository.js'
import type {JobKind} from '../src/jobs/job-kinds.js'
import {MemoryBroker} from '../src/jobs/memory-broker.js'
import {jobMessage, type JobMessageOf} from '../src/jobs/messages.js'
import {Outcome, UnrecoverableError, type JobOutcome} from '../src/jobs/outcome.js'
import {JOB_POLICIES, JobRegistry, type JobContext} from '../src/jobs/registry.js'
import {retryDelays} from '../src/jobs/retry-policy.js'
import {JobRunner} from '../src/jobs/runner.js'
import {topology, type Topology} from '../src/jobs/topology.js'
import {TEST_AMQP_URL} from './support/services.js'
import {drainDeadLetters, inspector, openTestDatabase, randomId, removeTopology, testPrefix, waitFor, type TestDatabase} from './pipeline-support.js'

const RETRY_BASE_MS = 300
const MAX_ATTEMPTS = 3
const TIMEOUT_MS = 500
const KIND: JobKind = 'snapshot'

type Behaviour = (job: JobMessageOf<'snapshot'>, context: JobContext) => Promise<JobOutcome>

interface Harness {
  broker: Broker
  /** Raw bytes onto the kind's queue, as a broken publisher would send them. */
  inject(body: Buffer): Promise<void>
  deadLetters(): Promise<Array<{reason: string | undefined; body: string}>>
  queueDepth(): Promise<number>
  close(): Promise<void>
}

const log = pino({level: 'silent'})
const delays = retryDelays(RETRY_BASE_MS, MAX_ATTEMPTS)

async function amqpHarness(): Promise<Harness> {
  const t: Topology = topology(testPrefix(), delays, 5)
  const broker = new AmqpBroker({url: TEST_AMQP_URL, topology: t, nodeId: 'runner-test', log})
  await broker.start()
  await broker.connected()
  const look = await inspector()
  return {
    broker,
    inject: async (body) => void look.channel.publish(t.workExchange, KIND, body),
    deadLetters: () => drainDeadLetters(look.channel, t.deadQueue(KIND)),
    queueDepth: async () => (await look.channel.checkQueue(t.workQueue(KIND))).messageCount,
    async close() {
      await broker.close()
      await look.close()
      await removeTopology(t)
    },
  }
}

async function memoryHarness(): Promise<Harness> {
  const broker = new MemoryBroker({retryDelays: delays, deliveryLimit: 5})
  let taken = 0
  return {
    broker,
    inject: async (body) => broker.inject(KIND, body),
    deadLetters: async () => {
      const all = broker.deadLetters(KIND).slice(taken)
      taken += all.length
      return all.map((d) => ({reason: d.reason, body: d.body.toString('utf8')}))
    },
    queueDepth: async () => broker.depth(KIND),
    close: () => broker.close(),
  }
}

for (const [name, makeHarness] of [
  ['RabbitMQ', amqpHarness],
  ['the in-process broker', memoryHarness],
] as const) {
  describe(`job runner through ${name}`, {timeout: 60_000}, () => {
    let database: TestDatabase
    let harness: Harness
    let jobs: JobRepository
    let runner: JobRunner
    const behaviours = new Map<string, Behaviour>()
    const calls = new Map<string, Array<{at: number; attempt: number}>>()

    before(async () => {
      database = await openTestDatabase()
      harness = await makeHarness()
      jobs = new JobRepository(database.db)
      const registry = new JobRegistry().register('snapshot', async (job, context) => {
        calls.set(job.uploadId, [...(calls.get(job.uploadId) ?? []), {at: Date.now(), attempt: context.attempt}])
        return behaviours.get(job.uploadId)!(job, context)
      })
      const policies = {...JOB_POLICIES, snapshot: {concurrency: 4, attempts: MAX_ATTEMPTS, timeoutMs: TIMEOUT_MS}}
      runner = new JobRunner({broker: harness.broker, jobs, registry, policies, nodeId: 'runner-test', log})
      assert.deepEqual(await runner.start(['transcode', 'snapshot']), ['snapshot'])
    })

    after(async () => {
      await runner?.close(2000)
      await harness?.close()
      await database?.drop()
    })

    async function run(behaviour: Behaviour): Promise<string> {
      const uploadId = randomId()
      behaviours.set(uploadId, behaviour)
      await harness.broker.publishJob(jobMessage(KIND, uploadId))
      return uploadId
    }

    const settled = (uploadId: string) =>
      waitFor(`the ${KIND} job of ${uploadId} to settle`, async () => {
        const job = await jobs.find(uploadId, KIND)
        return job && ['succeeded', 'dead'].includes(job.status) ? job : undefined
      })

    test('a job that succeeds runs once, is recorded, and leaves nothing in the queue', async () => {
      const uploadId = await run(async (_job, context) => {
        await context.progress(40)
        return Outcome.succeeded()
      })
      const job = await settled(uploadId)
      assert.equal(job.status, 'succeeded')
      assert.equal(job.attempts, 1)
      assert.equal(job.progress, 100)
      assert.equal(job.workerNode, 'runner-test')
      assert.ok(job.startedAt && job.finishedAt && job.finishedAt >= job.startedAt)
      assert.equal(calls.get(uploadId)!.length, 1)
      const [withHistory] = await jobs.forUpload(uploadId)
      assert.deepEqual(withHistory!.history.map((a) => a.outcome), ['succeeded'])
      await waitFor('the queue to be empty', async () => (await harness.queueDepth()) === 0 && runner.activeJobs === 0)
    })

    test('a failing attempt is retried after a delay that doubles each time', async () => {
      const uploadId = await run(async (_job, context) => {
        if (context.attempt < 3) throw new Error(`storage hiccup ${context.attempt}`)
        return Outcome.succeeded()
      })
      const job = await settled(uploadId)
      assert.equal(job.status, 'succeeded')
      assert.equal(job.attempts, 3)
      const at = calls.get(uploadId)!.map((c) => c.at)
      const [first, second] = [at[1]! - at[0]!, at[2]! - at[1]!]
      assert.ok(first >= RETRY_BASE_MS - 20, `first retry after ${first} ms, expected at least ${RETRY_BASE_MS}`)
      assert.ok(second >= 2 * RETRY_BASE_MS - 20, `second retry after ${second} ms, expected at least ${2 * RETRY_BASE_MS}`)
      assert.ok(second > first * 1.5, `the delay grew from ${first} to ${second} ms`)
      const [withHistory] = await jobs.forUpload(uploadId)
      assert.deepEqual(withHistory!.history.map((a) => [a.outcome, a.error]), [
        ['failed', 'storage hiccup 1'],
        ['failed', 'storage hiccup 2'],
        ['succeeded', null],
      ])
    })

    test('an UnrecoverableError dead-letters the job at once, with its reason', async () => {
      const uploadId = await run(async () => {
        throw new UnrecoverableError('the file is not a video')
      })
      const job = await settled(uploadId)
      assert.equal(job.status, 'dead')
      assert.equal(job.lastError, 'the file is not a video')
      assert.equal(calls.get(uploadId)!.length, 1)
      const dead = await waitFor('the dead letter', async () => {
        const letters = await harness.deadLetters()
        return letters.length > 0 ? letters : undefined
      })
      assert.equal(dead.length, 1)
      assert.equal(dead[0]!.reason, 'the file is not a video')
      assert.equal(JSON.parse(dead[0]!.body).uploadId, uploadId)
    })

    test('a job that keeps failing is dead after the last attempt', async () => {
      const uploadId = await run(async () => Outcome.retry('the peer node is busy'))
      const job = await settled(uploadId)
      assert.equal(job.status, 'dead')
      assert.equal(job.attempts, MAX_ATTEMPTS)
      assert.equal(job.lastError, `gave up after ${MAX_ATTEMPTS} attempts: the peer node is busy`)
      assert.equal(calls.get(uploadId)!.length, MAX_ATTEMPTS)
      const dead = await waitFor('the dead letter', async () => {
        const letters = await harness.deadLetters()
        return letters.length > 0 ? letters : undefined
      })
      assert.match(dead[0]!.reason!, /gave up after 3 attempts/)
    })

    test('an attempt that outlives its timeout is aborted and retried', async () => {
      let sawAbort = false
      const uploadId = await run(async (_job, context) => {
        if (context.attempt === 1) {
          await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve(), {once: true}))
          sawAbort = true
        }
        return Outcome.succeeded()
      })
      const job = await settled(uploadId)
      assert.equal(job.status, 'succeeded')
      assert.equal(job.attempts, 2)
      assert.ok(sawAbort, 'the handler was told to stop through its signal')
      const [withHistory] = await jobs.forUpload(uploadId)
      assert.match(withHistory!.history[0]!.error!, /timed out after 500 ms/)
    })

    test('malformed messages are dead-lettered with the reason and the consumer keeps working', async () => {
      await harness.inject(Buffer.from('not json at all'))
      await harness.inject(Buffer.from(JSON.stringify({schemaVersion: 99, kind: KIND, uploadId: 'x'})))
      await harness.inject(Buffer.from(JSON.stringify({schemaVersion: 1, kind: 'transcode', uploadId: 'x'})))
      const dead = await waitFor('three dead letters', async () => {
        const letters: Array<{reason: string | undefined}> = []
        for (let i = 0; i < 40 && letters.length < 3; i++) {
          letters.push(...(await harness.deadLetters()))
          if (letters.length < 3) await new Promise((r) => setTimeout(r, 25))
        }
        return letters.length >= 3 ? letters : undefined
      })
      assert.deepEqual(
        dead.map((d) => d.reason),
        [
          'malformed message: body is not JSON',
          'malformed message: invalid schemaVersion: Invalid input: expected 1',
          'malformed message: a transcode job on the snapshot queue',
        ]
      )
      const uploadId = await run(async () => Outcome.succeeded())
      assert.equal((await settled(uploadId)).status, 'succeeded')
    })

    test('a duplicate message for a finished job is acknowledged without running it again', async () => {
      const uploadId = await run(async () => Outcome.succeeded())
      await settled(uploadId)
      await harness.broker.publishJob(jobMessage(KIND, uploadId))
      await harness.broker.publishJob(jobMessage(KIND, uploadId))
      await waitFor('the duplicates to be consumed', async () => (await harness.queueDepth()) === 0 && runner.activeJobs === 0)
      await new Promise((r) => setTimeout(r, 100))
      assert.equal(calls.get(uploadId)!.length, 1)
      const job = await jobs.find(uploadId, KIND)
      assert.equal(job!.attempts, 1)
    })
  })
}
