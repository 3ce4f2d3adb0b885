/**
 * RabbitMQ going away while 200 uploads complete, and coming back.
 *
 * The node reaches RabbitMQ through a TCP proxy that the test cuts (every connection dropped,
 * the port refusing new ones) for a few seconds mid-run and then restores, rather than by
 * restarting the machine's RabbitMQ: that broker is shared with every other test and engineer
 * on this machine. From the node's side the two look the same (connections reset, then
 * refused); what the proxy cannot show is RabbitMQ's own recovery of its quorum queues.
 *
 * The node (in-process, fresh queue prefix and schema) runs a handler of the test's own for
 * transcode and snapshot jobs that writes its effect into a table with a UNIQUE constraint and
 * logs every attempt. Uploads keep completing while the broker is down (their events wait in
 * the outbox); afterwards every upload has exactly one effect per kind, the outbox is drained,
 * no job is left running and the queues are empty.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {after, before, describe, it} from 'node:test'
import type {AmqpBroker} from '../../src/jobs/amqp-broker.js'
import type {JobKind} from '../../src/jobs/job-kinds.js'
import {Outcome} from '../../src/jobs/outcome.js'
import {JobRegistry, type JobHandler} from '../../src/jobs/registry.js'
import type {Topology} from '../../src/jobs/topology.js'
import {inspector, removeTopology, testPrefix, waitFor} from '../support/pipeline-support.js'
import {createUpload, PATCH_HEADERS, request} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'
import {TEST_AMQP_URL} from '../support/services.js'
import {pause, seedFrom, startCuttableProxy, type CuttableProxy} from './support.js'

const UPLOADS = 200
const LANES = 8
const KINDS: JobKind[] = ['transcode', 'snapshot']
/** Completed uploads before the cut, and how long the broker stays away. */
const CUT_AFTER = 60
const CUT_MS = 4000

describe('RabbitMQ outage during completions', {timeout: 150_000}, () => {
  const rng = seedFrom('FAULT_SEED')
  let proxy: CuttableProxy
  let node: TestNode | undefined
  let topology: Topology | undefined
  const violations: string[] = []

  // The node opens its database inside startNode; handlers wait for it (no job exists before the first upload).
  let setDb!: (db: TestNode['db']) => void
  const db = new Promise<TestNode['db']>((resolve) => (setDb = resolve))

  const effectHandler = <K extends JobKind>(kind: K): JobHandler<K> =>
    async (job, context) => {
      const database = await db
      await database.query(`INSERT INTO fault_attempts (upload_id, kind, attempt) VALUES ($1, $2, $3)`, [job.uploadId, kind, context.attempt])
      await pause(rng.int(5, 60))
      try {
        await database.query(`INSERT INTO fault_effects (upload_id, kind) VALUES ($1, $2)`, [job.uploadId, kind])
      } catch (error) {
        const code = (error as {code?: string; driverError?: {code?: string}}).driverError?.code ?? (error as {code?: string}).code
        if (code !== '23505') throw error
        // The effect is already there (an idempotent handler would stop here): the job ran twice.
        violations.push(`${kind} ${job.uploadId} attempt ${context.attempt}`)
      }
      return Outcome.succeeded()
    }

  before(async () => {
    proxy = await startCuttableProxy(new URL(TEST_AMQP_URL).hostname, Number(new URL(TEST_AMQP_URL).port || 5672))
    const registry = new JobRegistry().register('transcode', effectHandler('transcode')).register('snapshot', effectHandler('snapshot'))
    node = await startTestNode(
      'postgres',
      {
        amqpUrl: proxy.url('amqp', 'guest:guest'),
        queuePrefix: testPrefix(),
        jobPrefetch: {transcode: 4, snapshot: 4},
        jobRetryDelay: '200ms',
        jobMaxAttempts: 5,
        outboxPollInterval: '50ms',
      },
      {registry, kinds: KINDS}
    )
    topology = (node.pipeline.broker as AmqpBroker).topology
    await node.db.query(`CREATE TABLE fault_effects (upload_id text NOT NULL, kind text NOT NULL, at timestamptz NOT NULL DEFAULT now(), UNIQUE (upload_id, kind))`)
    await node.db.query(`CREATE TABLE fault_attempts (upload_id text NOT NULL, kind text NOT NULL, attempt int NOT NULL, at timestamptz NOT NULL DEFAULT now())`)
    setDb(node.db)
    await waitFor('the node to connect to RabbitMQ', () => (node!.pipeline.broker as AmqpBroker).isConnected, 20_000)
  })

  after(async () => {
    await node?.stop()
    await proxy?.close()
    if (topology) await removeTopology(topology)
  })

  it('processes every upload exactly once in effect, drains the outbox and leaves no job running', async () => {
    const n = node!
    const broker = n.pipeline.broker as AmqpBroker
    const count = async (sql: string) => Number(((await n.db.query(sql)) as Array<{n: string}>)[0]!.n)
    let completed = 0
    let next = 0
    let phase: 'before' | 'cut' | 'after' = 'before'
    const completedIn = {before: 0, cut: 0, after: 0}
    const ids: string[] = []

    async function lane(): Promise<void> {
      while (next < UPLOADS) {
        next++
        const size = rng.int(1, 4096)
        const url = await createUpload(n.url, size)
        const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: randomBytes(size)})
        assert.equal(res.status, 204, `upload ${url}: ${res.status} ${res.body}`)
        ids.push(url.split('/').pop()!)
        completed++
        completedIn[phase]++
        await pause(rng.int(20, 80))
      }
    }

    let effectsAtCut = -1
    let effectsAtRestore = -1
    let disconnectedDuringCut = false
    const outage = (async () => {
      await waitFor(`${CUT_AFTER} completed uploads`, () => completed >= CUT_AFTER, 60_000)
      await proxy.cut()
      phase = 'cut'
      effectsAtCut = await count(`SELECT count(*) AS n FROM fault_effects`)
      await pause(CUT_MS / 2)
      disconnectedDuringCut = !broker.isConnected
      await pause(CUT_MS / 2)
      effectsAtRestore = await count(`SELECT count(*) AS n FROM fault_effects`)
      await proxy.restore()
      phase = 'after'
    })()
    const startedAt = Date.now()
    await Promise.all([...Array.from({length: LANES}, lane), outage])

    const expected = UPLOADS * KINDS.length
    await waitFor(
      'every job to succeed and the outbox to drain',
      async () =>
        (await count(`SELECT count(*) AS n FROM jobs WHERE status = 'succeeded'`)) === expected &&
        (await count(`SELECT count(*) AS n FROM outbox WHERE published_at IS NULL`)) === 0,
      60_000
    ).catch(async (error: Error) => {
      const jobs = await n.db.query(`SELECT kind, status, count(*) AS n FROM jobs GROUP BY 1, 2 ORDER BY 1, 2`)
      const outbox = await n.db.query(`SELECT count(*) AS n, max(attempts) AS attempts, max(last_error) AS error FROM outbox WHERE published_at IS NULL`)
      throw new Error(`${error.message}: jobs ${JSON.stringify(jobs)}, unpublished ${JSON.stringify(outbox)}`)
    })
    const attempts = await count(`SELECT count(*) AS n FROM fault_attempts`)
    const abandoned = await count(`SELECT count(*) AS n FROM job_attempts WHERE outcome <> 'succeeded'`)
    process.stdout.write(
      `# ${UPLOADS} uploads in ${Date.now() - startedAt} ms; completed before/during/after the cut: ${completedIn.before}/${completedIn.cut}/${completedIn.after}; ` +
        `effects at cut ${effectsAtCut}, at restore ${effectsAtRestore}; ${attempts} handler attempts, ${abandoned} attempts not succeeded\n`
    )

    // The outage really happened in the middle of the work.
    assert.ok(disconnectedDuringCut, 'the node noticed RabbitMQ was gone')
    assert.ok(completedIn.cut > 0, 'uploads kept completing while RabbitMQ was down')
    assert.ok(effectsAtCut > 0 && effectsAtCut < expected, `the cut came mid-way (${effectsAtCut} of ${expected} effects)`)

    assert.equal(new Set(ids).size, UPLOADS)
    const effects = (await n.db.query(`SELECT upload_id, kind FROM fault_effects`)) as Array<{upload_id: string; kind: string}>
    assert.equal(effects.length, expected, 'one effect per upload and kind')
    for (const kind of KINDS) {
      const done = new Set(effects.filter((e) => e.kind === kind).map((e) => e.upload_id))
      assert.deepEqual(ids.filter((id) => !done.has(id)), [], `every upload has its ${kind} effect`)
    }
    assert.deepEqual(violations, [], 'no job took effect twice')
    assert.equal(await count(`SELECT count(*) AS n FROM outbox WHERE published_at IS NULL`), 0, 'the outbox is fully published')
    assert.equal(await count(`SELECT count(*) AS n FROM jobs WHERE status = 'running'`), 0, 'no job stuck running')
    assert.equal(await count(`SELECT count(*) AS n FROM job_attempts WHERE finished_at IS NULL`), 0, 'no attempt left open')
    assert.ok(broker.isConnected, 'the node is connected again')

    const look = await inspector()
    try {
      for (const kind of KINDS) {
        await waitFor(`the ${kind} queue to be empty`, async () => (await look.channel.checkQueue(topology!.workQueue(kind))).messageCount === 0)
        assert.equal((await look.channel.checkQueue(topology!.deadQueue(kind))).messageCount, 0, `nothing dead-lettered (${kind})`)
      }
    } finally {
      await look.close()
    }
  })
})
