/**
 * The outbox relay against the real RabbitMQ and PostgreSQL: nothing is lost while the broker
 * is unreachable, the backlog drains when it returns, relays sharing one outbox do not publish a
 * row twice, and a batch starts each job once however many of its rows ask for it (with the
 * in-process broker too).
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import {after, before, describe, test} from 'node:test'
import type amqp from 'amqplib'
import type {DataSource} from 'typeorm'
import pino from 'pino'
import {AmqpBroker} from '../src/jobs/amqp-broker.js'
import {declareTopology} from '../src/jobs/amqp-topology.js'
import {JobRepository} from '../src/jobs/job-repository.js'
import {MemoryBroker} from '../src/jobs/memory-broker.js'
import {SCHEMA_VERSION} from '../src/events/event-schemas.js'
import {OutboxRelay} from '../src/jobs/outbox-relay.js'
import {retryDelays} from '../src/jobs/job-policies.js'
import {topology} from '../src/jobs/topology.js'
import type {JobMessage} from '../src/jobs/messages.js'
import {WebhookDeliveries} from '../src/webhooks/webhook-deliveries.js'
import {TEST_AMQP_URL, TEST_DATABASE_URL} from './support/services.js'
import {completedUpload, inspector, openTestDatabase, removeTopology, testPrefix, waitFor, type TestDatabase} from './support/pipeline-support.js'

const log = pino({level: 'silent'})

/** A TCP hop to RabbitMQ that can be switched on and off: the broker "stopped" and "started". */
class BrokerSwitch {
  private server?: net.Server
  private readonly sockets = new Set<net.Socket>()
  constructor(readonly port: number) {}

  static async onFreePort(): Promise<BrokerSwitch> {
    const probe = net.createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const {port} = probe.address() as net.AddressInfo
    await new Promise((resolve) => probe.close(resolve))
    return new BrokerSwitch(port)
  }

  get url(): string {
    const target = new URL(TEST_AMQP_URL)
    target.port = String(this.port)
    return target.toString()
  }

  async on(): Promise<void> {
    const target = new URL(TEST_AMQP_URL)
    this.server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 5672), target.hostname)
      for (const s of [client, upstream]) {
        this.sockets.add(s)
        s.on('close', () => this.sockets.delete(s))
        s.on('error', () => {})
      }
      client.pipe(upstream).pipe(client)
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve))
  }

  async off(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    if (this.server) await new Promise((resolve) => this.server!.close(resolve))
    this.server = undefined
  }
}

async function observe(channel: amqp.Channel, exchange: string, pattern: string): Promise<string> {
  const {queue} = await channel.assertQueue('', {exclusive: true, autoDelete: true})
  await channel.bindQueue(queue, exchange, pattern)
  return queue
}

/** Writes `count` artifact.created rows for an upload, as the media consumers do for each file. */
async function artifactRows(db: DataSource, uploadId: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const payload = {schemaVersion: SCHEMA_VERSION, type: 'artifact.created', uploadId, artifactId: String(i + 1), nodeId: 'relay-test', role: 'hls', path: `hls/360p/segment-${i}.ts`, size: 1000, createdAt: new Date().toISOString()}
    await db.query(`INSERT INTO outbox (topic, upload_id, payload) VALUES ('artifact.created', $1, $2::jsonb)`, [uploadId, JSON.stringify(payload)])
  }
}

const countBy = <T>(items: T[], key: (item: T) => string) => items.reduce<Record<string, number>>((acc, item) => ({...acc, [key(item)]: (acc[key(item)] ?? 0) + 1}), {})

async function collect(channel: amqp.Channel, queue: string, into: unknown[]): Promise<void> {
  for (;;) {
    const message = await channel.get(queue, {noAck: true})
    if (!message) return
    into.push(JSON.parse(message.content.toString('utf8')))
  }
}

describe('outbox relay', {timeout: 90_000}, () => {
  let database: TestDatabase
  const t = topology(testPrefix(), retryDelays(1000, 3), 5)
  let look: Awaited<ReturnType<typeof inspector>>

  before(async () => {
    database = await openTestDatabase()
    look = await inspector()
    await declareTopology(look.channel, t)
  })

  after(async () => {
    await look?.close()
    await removeTopology(t)
    await database?.drop()
  })

  test('with the broker unreachable nothing is lost; when it returns every event arrives', async () => {
    const {db} = database
    const uploads: string[] = []
    for (let i = 0; i < 20; i++) uploads.push(await completedUpload(db))
    const events = await observe(look.channel, t.eventsExchange, 'upload.completed')

    const broker_switch = await BrokerSwitch.onFreePort()
    const broker = new AmqpBroker({url: broker_switch.url, topology: t, nodeId: 'relay-test', log})
    await broker.start()
    const jobs = new JobRepository(db)
    const relay = new OutboxRelay(db, broker, jobs, log, {pollIntervalMs: 50, minBackoffMs: 100, maxBackoffMs: 1000})
    await relay.start()
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const waiting = (await db.query(`SELECT attempts, last_error, published_at FROM outbox WHERE topic = 'upload.completed'`)) as Array<{attempts: number; last_error: string | null; published_at: Date | null}>
      assert.equal(waiting.length, 20)
      assert.ok(waiting.every((r) => r.published_at === null), 'no row is marked sent while the broker is down')
      const attempts = waiting[0]!.attempts
      // Backing off (100, 200, 400, 800 ms...): a handful of tries in 1.5 s, not one per poll.
      assert.ok(attempts >= 2 && attempts <= 6, `${attempts} attempts in 1.5 s`)
      assert.match(waiting[0]!.last_error!, /not connected to RabbitMQ/)

      await broker_switch.on()
      const late: string[] = []
      for (let i = 0; i < 5; i++) late.push(await completedUpload(db))
      const received: Array<{uploadId: string}> = []
      await waitFor(
        'every upload.completed event',
        async () => {
          await collect(look.channel, events, received)
          return received.length >= 25
        },
        20_000
      )
      assert.deepEqual(new Set(received.map((e) => e.uploadId)), new Set([...uploads, ...late]))
      // Marked sent only after the broker confirmed, so possibly a moment after delivery.
      await waitFor('every row marked sent', async () => {
        const unsent = (await db.query(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'upload.completed' AND published_at IS NULL`)) as Array<{n: number}>
        return unsent[0]!.n === 0
      })
      // Each completion started its jobs: a message per kind and a queued row per kind.
      assert.equal((await look.channel.checkQueue(t.workQueue('transcode'))).messageCount, 25)
      assert.equal((await look.channel.checkQueue(t.workQueue('snapshot'))).messageCount, 25)
      const rows = (await db.query(`SELECT kind, status, count(*)::int AS n FROM jobs GROUP BY kind, status ORDER BY kind`)) as Array<{kind: string; status: string; n: number}>
      assert.deepEqual(rows, [
        {kind: 'snapshot', status: 'queued', n: 25},
        {kind: 'transcode', status: 'queued', n: 25},
      ])
    } finally {
      await relay.stop()
      await broker.close()
      await broker_switch.off()
      await look.channel.purgeQueue(t.workQueue('transcode'))
      await look.channel.purgeQueue(t.workQueue('snapshot'))
    }
  })

  test('relays on several nodes share one outbox without publishing a row twice', async () => {
    const {db} = database
    const events = await observe(look.channel, t.eventsExchange, 'upload.completed')
    const ids: string[] = []
    for (let i = 0; i < 150; i++) ids.push(await completedUpload(db))
    const relays: OutboxRelay[] = []
    const brokers: AmqpBroker[] = []
    for (let i = 0; i < 3; i++) {
      const broker = new AmqpBroker({url: TEST_AMQP_URL, topology: t, nodeId: `node-${i}`, log})
      await broker.start()
      await broker.connected()
      brokers.push(broker)
      relays.push(
        new OutboxRelay(db, broker, new JobRepository(db), log, {
          pollIntervalMs: 20,
          batchSize: 10,
          listen: {url: TEST_DATABASE_URL, schema: database.schema},
        })
      )
    }
    try {
      await Promise.all(relays.map((r) => r.start()))
      const received: Array<{uploadId: string}> = []
      await waitFor('150 events', async () => {
        await collect(look.channel, events, received)
        return received.filter((e) => ids.includes(e.uploadId)).length >= 150
      })
      await new Promise((resolve) => setTimeout(resolve, 300))
      await collect(look.channel, events, received)
      const ours = received.filter((e) => ids.includes(e.uploadId))
      assert.equal(ours.length, 150, 'each row published exactly once')
      assert.deepEqual(new Set(ours.map((e) => e.uploadId)), new Set(ids))
    } finally {
      await Promise.all(relays.map((r) => r.stop()))
      await Promise.all(brokers.map((b) => b.close()))
    }
  })

  test('a batch publishes every event but each job once per (kind, upload)', async () => {
    const {db} = database
    const [a, b] = [await completedUpload(db), await completedUpload(db)]
    await artifactRows(db, a, 30)
    await artifactRows(db, b, 5)
    const events = await observe(look.channel, t.eventsExchange, '#')
    const work = await observe(look.channel, t.workExchange, '#')
    const broker = new AmqpBroker({url: TEST_AMQP_URL, topology: t, nodeId: 'relay-batch', log})
    await broker.start()
    await broker.connected()
    try {
      const relay = new OutboxRelay(db, broker, new JobRepository(db), log, {pollIntervalMs: 50, batchSize: 500})
      assert.ok((await relay.relayBatch()) >= 37)
      const unsent = (await db.query(`SELECT count(*)::int AS n FROM outbox WHERE upload_id = ANY($1) AND published_at IS NULL`, [[a, b]])) as Array<{n: number}>
      assert.equal(unsent[0]!.n, 0, 'one batch took every row')
      const received: Array<{type: string; uploadId: string}> = []
      const jobs: Array<{kind: string; uploadId: string}> = []
      await waitFor('the events and jobs', async () => {
        await collect(look.channel, events, received)
        await collect(look.channel, work, jobs)
        return received.filter((e) => e.uploadId === a || e.uploadId === b).length >= 37 && jobs.filter((j) => j.uploadId === a || j.uploadId === b).length >= 6
      })
      await new Promise((resolve) => setTimeout(resolve, 200))
      await collect(look.channel, events, received)
      await collect(look.channel, work, jobs)
      const ours = (item: {uploadId: string}) => item.uploadId === a || item.uploadId === b
      assert.deepEqual(countBy(received.filter(ours), (e) => `${e.type} ${e.uploadId === a ? 'a' : 'b'}`), {
        'upload.completed a': 1,
        'upload.completed b': 1,
        'artifact.created a': 30,
        'artifact.created b': 5,
      })
      assert.deepEqual(countBy(jobs.filter(ours), (j) => `${j.kind} ${j.uploadId === a ? 'a' : 'b'}`), {
        'fanout a': 1,
        'fanout b': 1,
        'snapshot a': 1,
        'snapshot b': 1,
        'transcode a': 1,
        'transcode b': 1,
      })
      const rows = (await db.query(`SELECT upload_id, kind, status FROM jobs WHERE upload_id = ANY($1) ORDER BY upload_id, kind`, [[a, b]])) as Array<{kind: string; status: string}>
      assert.deepEqual(rows.map((r) => `${r.kind} ${r.status}`).sort(), ['fanout queued', 'fanout queued', 'snapshot queued', 'snapshot queued', 'transcode queued', 'transcode queued'])
    } finally {
      await broker.close()
      for (const kind of t.kinds) await look.channel.purgeQueue(t.workQueue(kind))
    }
  })

  test('with the in-process broker too, a batch starts each job once per (kind, upload)', async () => {
    const {db} = database
    const upload = await completedUpload(db)
    await artifactRows(db, upload, 40)
    const broker = new MemoryBroker({deliveryLimit: 5})
    const events: string[] = []
    broker.onEvent((topic, event) => {
      if ((event as {uploadId?: string}).uploadId === upload) events.push(topic)
    })
    try {
      const relay = new OutboxRelay(db, broker, new JobRepository(db), log, {pollIntervalMs: 50, batchSize: 500})
      assert.ok((await relay.relayBatch()) >= 41)
      await waitFor('every event', () => events.length >= 41)
      assert.deepEqual(countBy(events, (topic) => topic), {'upload.completed': 1, 'artifact.created': 40})
      // No consumer: what was published is still in the queues.
      assert.deepEqual([broker.depth('fanout'), broker.depth('transcode'), broker.depth('snapshot')], [1, 1, 1])
    } finally {
      await broker.close()
    }
  })

  test('a job message is published only once what it points at is committed: a consumer that takes it at once waits for the batch and sees its new webhook delivery', async () => {
    const {db} = database
    const upload = await completedUpload(db)
    const jobs = new JobRepository(db)
    const deliveries = new WebhookDeliveries(db, () => 'http://node.test')
    // The first batch: upload.completed owed and delivered, the job done, as after a first pass.
    const first = new MemoryBroker({deliveryLimit: 5})
    try {
      await new OutboxRelay(db, first, jobs, log, {pollIntervalMs: 50, webhooks: true}).relayBatch()
    } finally {
      await first.close()
    }
    const pass = await jobs.begin(upload, 'webhook', 'relay-test')
    for (const owed of await deliveries.owed(upload)) await deliveries.delivered(owed.eventId)
    await jobs.finish(pass.job, 'succeeded', {error: null, summary: 'delivered'}, async () => {})

    /** A broker that hands each job message to a consumer the moment it is published, and confirms slowly. */
    const seen: Array<Promise<string[]>> = []
    class EagerBroker extends MemoryBroker {
      override async publishJob(job: JobMessage): Promise<void> {
        if (job.kind === 'webhook') seen.push(jobs.begin(upload, 'webhook', 'eager').then(async () => (await deliveries.owed(upload)).map((d) => d.topic)))
        await new Promise((resolve) => setTimeout(resolve, 300))
      }
    }
    await db.query(`INSERT INTO outbox (topic, upload_id, payload) VALUES ('upload.ready', $1, $2::jsonb)`, [upload, JSON.stringify({schemaVersion: SCHEMA_VERSION, type: 'upload.ready', uploadId: upload})])
    const broker = new EagerBroker({deliveryLimit: 5})
    try {
      // upload.ready, and the job events of the first pass.
      assert.ok((await new OutboxRelay(db, broker, jobs, log, {pollIntervalMs: 50, webhooks: true}).relayBatch()) >= 1)
      assert.equal(seen.length, 1)
      assert.deepEqual(await seen[0], ['upload.ready'])
    } finally {
      await broker.close()
    }
  })
})
