/**
 * The consumer runner against each broker adapter: RabbitMQ (real, at TEST_AMQP_URL) and the
 * in-process one. Same handlers, same expectations. Handlers are defined here; each test owns
 * an upload id and tells the handler how to behave for it. snapshot stands for a kind that runs
 * once, fanout for one that reruns on new work; transcode is left to the tests that start their
 * own consumers (delivery counts, a worker that dies).
 */
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import pino from 'pino'
import {AmqpBroker} from '../src/jobs/amqp-broker.js'
import type {Broker, Delivery} from '../src/jobs/broker.js'
import {JobRepository} from '../src/jobs/job-repository.js'
import type {JobKind} from '../src/jobs/job-kinds.js'
import {MemoryBroker} from '../src/jobs/memory-broker.js'
import {jobMessage} from '../src/jobs/messages.js'
import {Outcome, UnrecoverableError, type JobOutcome} from '../src/jobs/outcome.js'
import {JobRegistry, type JobContext} from '../src/jobs/registry.js'
import {JOB_POLICIES, retryDelays} from '../src/jobs/job-policies.js'
import {JobRunner} from '../src/jobs/runner.js'
import {topology, type Topology} from '../src/jobs/topology.js'
import {TEST_AMQP_URL} from './support/services.js'
import {drainDeadLetters, inspector, openTestDatabase, randomId, removeTopology, testPrefix, waitFor, type TestDatabase} from './support/pipeline-support.js'

const RETRY_BASE_MS = 300
const MAX_ATTEMPTS = 3
const TIMEOUT_MS = 1500
const KIND: JobKind = 'snapshot'

type Behaviour = (job: {uploadId: string}, context: JobContext) => Promise<JobOutcome>

/** A consumer that takes a message and dies before settling it (kill: its connection goes away). */
interface DoomedConsumer {
  kill(): Promise<void>
}

interface Harness {
  broker: Broker
  /** Raw bytes onto the kind's queue, as a broken publisher would send them. */
  inject(body: Buffer): Promise<void>
  deadLetters(): Promise<Array<{reason: string | undefined; body: string}>>
  queueDepth(kind?: JobKind): Promise<number>
  /** Consumes `kind` like another worker would; `take` records what it wants and never settles. */
  doomedConsumer(kind: JobKind, take: (delivery: Delivery) => Promise<void>): Promise<DoomedConsumer>
  close(): Promise<void>
}

function gate(): {open(): void; opened: Promise<void>} {
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  return {open, opened}
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The broker as the runner sees it, counting the deliveries it acknowledges per kind: a duplicate
 * leaves no other trace, so a test waits for its ack before going on.
 */
function countingAcks(broker: Broker): {broker: Broker; acked(kind: JobKind): number} {
  const acks = new Map<JobKind, number>()
  const counted: Broker = {
    name: broker.name,
    start: () => broker.start(),
    publishEvent: (topic, event) => broker.publishEvent(topic, event),
    publishJob: (job) => broker.publishJob(job),
    consume: (kind, prefetch, handler) =>
      broker.consume(kind, prefetch, (delivery) =>
        handler({
          ...delivery,
          ack: async () => {
            await delivery.ack()
            acks.set(kind, (acks.get(kind) ?? 0) + 1)
          },
        })
      ),
    peekDeadLetters: (kind, limit) => broker.peekDeadLetters(kind, limit),
    takeDeadLetters: (kind, limit) => broker.takeDeadLetters(kind, limit),
    purgeDeadLetters: (kind) => broker.purgeDeadLetters(kind),
    close: () => broker.close(),
  }
  return {broker: counted, acked: (kind) => acks.get(kind) ?? 0}
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
    queueDepth: async (kind = KIND) => (await look.channel.checkQueue(t.workQueue(kind))).messageCount,
    async doomedConsumer(kind, take) {
      // Its own connection, as another process would have: closing it returns what it held.
      const other = new AmqpBroker({url: TEST_AMQP_URL, topology: t, nodeId: 'doomed-worker', log})
      await other.start()
      await other.connected()
      await other.consume(kind, 1, take)
      return {kill: () => other.close()}
    },
    async close() {
      await broker.close()
      await look.close()
      await removeTopology(t)
    },
  }
}

async function memoryHarness(): Promise<Harness> {
  const broker = new MemoryBroker({deliveryLimit: 5})
  let taken = 0
  return {
    broker,
    inject: async (body) => broker.inject(KIND, body),
    deadLetters: async () => {
      const all = broker.deadLetters(KIND).slice(taken)
      taken += all.length
      return all.map((d) => ({reason: d.reason, body: d.body.toString('utf8')}))
    },
    queueDepth: async (kind = KIND) => broker.depth(kind),
    async doomedConsumer(kind, take) {
      // In one process a consumer "dies" by going away with its deliveries unsettled: they go back.
      const held: Delivery[] = []
      const subscription = await broker.consume(kind, 1, async (delivery) => {
        held.push(delivery)
        await take(delivery)
      })
      return {
        async kill() {
          await subscription.cancel()
          for (const delivery of held) await delivery.requeue()
        },
      }
    },
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
    let acked: (kind: JobKind) => number
    const behaviours = new Map<string, Behaviour>()
    const calls = new Map<string, Array<{at: number; attempt: number}>>()
    /** What the snapshot kind's onDead hook was told, and the job's status when it ran. */
    const deaths = new Map<string, Array<{reason: string; error: unknown; statusThen: string | undefined}>>()
    const policies = {
      kinds: {
        ...JOB_POLICIES,
        snapshot: {concurrency: 4, attempts: MAX_ATTEMPTS, timeoutMs: TIMEOUT_MS, rerun: false},
        fanout: {concurrency: 4, attempts: MAX_ATTEMPTS, timeoutMs: 10_000, rerun: true},
        transcode: {concurrency: 1, attempts: MAX_ATTEMPTS, timeoutMs: 10_000, rerun: false},
      },
      retryDelays: delays,
    }

    before(async () => {
      database = await openTestDatabase()
      harness = await makeHarness()
      jobs = new JobRepository(database.db)
      const handler: Behaviour = async (job, context) => {
        calls.set(job.uploadId, [...(calls.get(job.uploadId) ?? []), {at: Date.now(), attempt: context.attempt}])
        return behaviours.get(job.uploadId)!(job, context)
      }
      const registry = new JobRegistry()
        .register('snapshot', handler, async (job, death) => {
          const statusThen = (await jobs.find(job.uploadId, 'snapshot'))?.status
          deaths.set(job.uploadId, [...(deaths.get(job.uploadId) ?? []), {reason: death.reason, error: death.error, statusThen}])
        })
        .register('fanout', handler)
      const counting = countingAcks(harness.broker)
      acked = counting.acked
      runner = new JobRunner({broker: counting.broker, jobs, registry, policies, nodeId: 'runner-test', log})
      assert.deepEqual(await runner.start(['transcode', 'snapshot', 'fanout']), ['snapshot', 'fanout'])
    })

    after(async () => {
      await runner?.close(2000)
      await harness?.close()
      await database?.drop()
    })

    async function run(behaviour: Behaviour, kind: JobKind = KIND): Promise<string> {
      const uploadId = randomId()
      behaviours.set(uploadId, behaviour)
      await harness.broker.publishJob(jobMessage(kind, uploadId))
      return uploadId
    }

    const settled = (uploadId: string, kind: JobKind = KIND, attempts = 1) =>
      waitFor(`the ${kind} job of ${uploadId} to settle after ${attempts} attempts or more`, async () => {
        const job = await jobs.find(uploadId, kind)
        return job && ['succeeded', 'dead'].includes(job.status) && job.attempts >= attempts ? job : undefined
      })

    const running = (uploadId: string, kind: JobKind = KIND) =>
      waitFor(`the ${kind} job of ${uploadId} to run`, async () => (await jobs.find(uploadId, kind))?.status === 'running')

    /** A behaviour that waits for `until` and counts how many of its runs overlap. */
    function overlapping(until: Promise<void>, firstOnly = false) {
      const seen = {active: 0, most: 0}
      const behaviour: Behaviour = async (job) => {
        seen.active++
        seen.most = Math.max(seen.most, seen.active)
        try {
          if (!firstOnly || calls.get(job.uploadId)!.length === 1) await until
        } finally {
          seen.active--
        }
        return Outcome.succeeded()
      }
      return {seen, behaviour}
    }

    const outcomes = async (uploadId: string, kind: JobKind) =>
      (await jobs.forUpload(uploadId)).find((j) => j.kind === kind)!.history.map((a) => [a.attempt, a.outcome])

    test('a job that succeeds runs once, is recorded, and leaves nothing in the queue', async () => {
      const uploadId = await run(async (_job, context) => {
        await context.progress(40)
        return Outcome.succeeded('poster, 5 thumbnails')
      })
      const job = await settled(uploadId)
      assert.equal(job.status, 'succeeded')
      assert.equal(job.summary, 'poster, 5 thumbnails', 'what it did is its summary')
      assert.equal(job.lastError, null, 'a success is not an error')
      assert.equal(job.attempts, 1)
      assert.equal(job.progress, 100)
      assert.equal(job.workerNode, 'runner-test')
      assert.ok(job.startedAt && job.finishedAt && job.finishedAt >= job.startedAt)
      assert.equal(calls.get(uploadId)!.length, 1)
      const [withHistory] = await jobs.forUpload(uploadId)
      assert.deepEqual(withHistory!.history.map((a) => [a.outcome, a.error, a.summary]), [['succeeded', null, 'poster, 5 thumbnails']])
      assert.equal(deaths.get(uploadId), undefined, 'no onDead for a success')
      const events = (await database.db.query(`SELECT payload FROM outbox WHERE payload->>'uploadId' = $1 AND topic = 'job.succeeded'`, [uploadId])) as Array<{payload: {error: string | null; summary: string | null}}>
      assert.deepEqual(events.map((e) => [e.payload.error, e.payload.summary]), [[null, 'poster, 5 thumbnails']])
    })

    test('a handler with nothing to do says so: skipped, with its reason as the summary, never an error', async () => {
      const uploadId = await run(async () => Outcome.skipped('no peer to copy to'))
      const job = await settled(uploadId)
      assert.deepEqual([job.status, job.summary, job.lastError], ['succeeded', 'no peer to copy to', null])
      const [withHistory] = await jobs.forUpload(uploadId)
      assert.deepEqual(withHistory!.history.map((a) => [a.outcome, a.error, a.summary]), [['skipped', null, 'no peer to copy to']])
      await waitFor('the queue to be empty', async () => (await harness.queueDepth()) === 0 && runner.activeJobs === 0)
    })

    test('a failing attempt is retried after a delay that doubles each time', async () => {
      const uploadId = await run(async (_job, context) => {
        if (context.attempt < 3) throw new Error(`storage hiccup ${context.attempt}`)
        return Outcome.succeeded('done at last')
      })
      const job = await settled(uploadId)
      assert.equal(job.status, 'succeeded')
      assert.equal(job.attempts, 3)
      assert.deepEqual([job.lastError, job.summary], [null, 'done at last'], 'the failures stay in the history, not on the job')
      const at = calls.get(uploadId)!.map((c) => c.at)
      const [first, second] = [at[1]! - at[0]!, at[2]! - at[1]!]
      assert.ok(first >= RETRY_BASE_MS - 20, `first retry after ${first} ms, expected at least ${RETRY_BASE_MS}`)
      assert.ok(second >= 2 * RETRY_BASE_MS - 20, `second retry after ${second} ms, expected at least ${2 * RETRY_BASE_MS}`)
      assert.ok(second > first * 1.5, `the delay grew from ${first} to ${second} ms`)
      const [withHistory] = await jobs.forUpload(uploadId)
      assert.deepEqual(withHistory!.history.map((a) => [a.outcome, a.error, a.summary]), [
        ['failed', 'storage hiccup 1', null],
        ['failed', 'storage hiccup 2', null],
        ['succeeded', null, 'done at last'],
      ])
      assert.equal(deaths.get(uploadId), undefined, 'no onDead while retries are left')
    })

    test('an UnrecoverableError dead-letters the job at once, with its reason', async () => {
      const uploadId = await run(async () => {
        throw new UnrecoverableError('the file is not a video')
      })
      const job = await settled(uploadId)
      assert.equal(job.status, 'dead')
      assert.equal(job.lastError, 'the file is not a video')
      assert.equal(calls.get(uploadId)!.length, 1)
      const [death, ...more] = deaths.get(uploadId)!
      assert.equal(more.length, 0, 'onDead runs once')
      assert.equal(death!.reason, 'the file is not a video')
      assert.ok(death!.error instanceof UnrecoverableError, 'onDead is handed what the attempt threw')
      assert.equal(death!.statusThen, 'running', 'onDead runs before the job is recorded dead')
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
      assert.deepEqual(deaths.get(uploadId), [{reason: `gave up after ${MAX_ATTEMPTS} attempts: the peer node is busy`, error: undefined, statusThen: 'running'}], 'the runner, not the handler, gave up')
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
      assert.match(withHistory!.history[0]!.error!, new RegExp(`timed out after ${TIMEOUT_MS} ms`))
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

    test('a duplicate message while the job runs is acknowledged without a second, concurrent run', async () => {
      const release = gate()
      const {seen, behaviour} = overlapping(release.opened)
      const uploadId = await run(behaviour)
      await running(uploadId)
      const before = acked(KIND)
      for (let i = 0; i < 3; i++) await harness.broker.publishJob(jobMessage(KIND, uploadId))
      await waitFor('the duplicates to be acknowledged while the job runs', () => acked(KIND) === before + 3, 5000)
      assert.equal(runner.activeJobs, 1)
      release.open()
      const job = await settled(uploadId)
      assert.equal(seen.most, 1, 'never two runs at once')
      assert.equal(calls.get(uploadId)!.length, 1)
      assert.equal(job.status, 'succeeded')
      assert.equal(job.attempts, 1)
      assert.equal(job.rerunOwed, false, 'a kind that runs once owes nothing')
      assert.deepEqual(await outcomes(uploadId, KIND), [[1, 'succeeded']])
    })

    test('a delivery counts 1 the first time, more when handed back, and 1 again as a retry', async () => {
      const counts: number[] = []
      const subscription = await harness.broker.consume('transcode', 1, async (delivery) => {
        counts.push(delivery.deliveryCount)
        if (counts.length === 1) return delivery.requeue()
        if (counts.length === 2) return delivery.retry(1, 'once more')
        return delivery.ack()
      })
      try {
        await harness.broker.publishJob(jobMessage('transcode', randomId()))
        await waitFor('three deliveries', () => counts.length >= 3)
        await sleep(100)
        assert.deepEqual(counts, [1, 2, 1])
      } finally {
        await subscription.cancel()
      }
    })

    test('a redelivery of a running job whose worker died takes the job over', async () => {
      const uploadId = randomId()
      const doomedCounts: number[] = []
      const doomed = await harness.doomedConsumer('transcode', async (delivery) => {
        doomedCounts.push(delivery.deliveryCount)
        await jobs.begin(uploadId, 'transcode', 'doomed-worker', {redelivery: delivery.deliveryCount > 1, rerun: false})
      })
      await harness.broker.publishJob(jobMessage('transcode', uploadId))
      await running(uploadId, 'transcode')
      await doomed.kill()
      const attempts: number[] = []
      const registry = new JobRegistry().register('transcode', async (_job, context) => {
        attempts.push(context.attempt)
        return Outcome.succeeded()
      })
      const survivor = new JobRunner({broker: harness.broker, jobs, registry, policies, nodeId: 'survivor', log})
      await survivor.start(['transcode'])
      try {
        const job = await settled(uploadId, 'transcode')
        assert.equal(job.status, 'succeeded')
        assert.equal(job.attempts, 2)
        assert.equal(job.workerNode, 'survivor')
        assert.deepEqual(doomedCounts, [1])
        assert.deepEqual(attempts, [2])
        const [withHistory] = await jobs.forUpload(uploadId)
        assert.deepEqual(withHistory!.history.map((a) => [a.attempt, a.workerNode, a.outcome]), [
          [1, 'doomed-worker', 'abandoned'],
          [2, 'survivor', 'succeeded'],
        ])
      } finally {
        await survivor.close(2000)
      }
    })

    test('a rerun kind runs again, with a fresh attempt budget, when a message comes after it succeeded', async () => {
      // The first run uses its whole budget (fails twice, succeeds on the last attempt); the
      // rerun fails once and is still retried rather than dead.
      const uploadId = await run(async (job) => {
        const n = calls.get(job.uploadId)!.length
        if (n === 1 || n === 2 || n === 4) throw new Error(`peer busy (call ${n})`)
        return Outcome.succeeded()
      }, 'fanout')
      const first = await settled(uploadId, 'fanout', MAX_ATTEMPTS)
      assert.equal(first.status, 'succeeded')
      await harness.broker.publishJob(jobMessage('fanout', uploadId))
      const job = await settled(uploadId, 'fanout', MAX_ATTEMPTS + 2)
      assert.equal(job.status, 'succeeded')
      assert.equal(job.attempts, 5)
      assert.equal(job.runFirstAttempt, 4)
      assert.deepEqual(calls.get(uploadId)!.map((c) => c.attempt), [1, 2, 3, 1, 2])
      assert.deepEqual(await outcomes(uploadId, 'fanout'), [
        [1, 'failed'],
        [2, 'failed'],
        [3, 'succeeded'],
        [4, 'failed'],
        [5, 'succeeded'],
      ])
    })

    test('a dead rerun kind runs again when a message comes after it died', async () => {
      const uploadId = await run(async (job) => {
        if (calls.get(job.uploadId)!.length === 1) throw new UnrecoverableError('no peer accepts it')
        return Outcome.succeeded()
      }, 'fanout')
      assert.equal((await settled(uploadId, 'fanout')).status, 'dead')
      await harness.broker.publishJob(jobMessage('fanout', uploadId))
      const job = await settled(uploadId, 'fanout', 2)
      assert.equal(job.status, 'succeeded')
      assert.deepEqual(await outcomes(uploadId, 'fanout'), [
        [1, 'dead'],
        [2, 'succeeded'],
      ])
    })

    test('messages that come while a rerun kind runs make it run exactly once more, never concurrently', async () => {
      const release = gate()
      const {seen, behaviour} = overlapping(release.opened, true)
      const uploadId = await run(behaviour, 'fanout')
      await running(uploadId, 'fanout')
      const before = acked('fanout')
      for (let i = 0; i < 3; i++) await harness.broker.publishJob(jobMessage('fanout', uploadId))
      await waitFor('the messages to be acknowledged while the job runs', () => acked('fanout') === before + 3, 5000)
      assert.equal(runner.activeJobs, 1)
      assert.equal((await jobs.find(uploadId, 'fanout'))!.rerunOwed, true, 'the job owes a rerun')
      assert.equal(calls.get(uploadId)!.length, 1, 'no message ran it while it was running')
      release.open()
      await settled(uploadId, 'fanout', 2)
      await waitFor('the queue to be empty', async () => (await harness.queueDepth('fanout')) === 0 && runner.activeJobs === 0)
      await sleep(300)
      const job = (await jobs.find(uploadId, 'fanout'))!
      assert.equal(seen.most, 1, 'never two runs at once')
      assert.equal(calls.get(uploadId)!.length, 2)
      assert.equal(job.status, 'succeeded')
      assert.equal(job.attempts, 2)
      assert.equal(job.rerunOwed, false)
      assert.deepEqual(calls.get(uploadId)!.map((c) => c.attempt), [1, 1], 'the rerun starts a fresh run')
      assert.deepEqual(await outcomes(uploadId, 'fanout'), [
        [1, 'succeeded'],
        [2, 'succeeded'],
      ])
    })
  })
}
