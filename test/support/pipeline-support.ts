/**
 * Helpers for the pipeline tests: a database schema of their own, a queue prefix of their own
 * (removed afterwards), completed uploads with their outbox rows, and waiting with a deadline.
 */
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import amqp, {type Channel} from 'amqplib'
import type {DataSource} from 'typeorm'
import {openDatabase} from '../../src/db/database.js'
import type {Topology} from '../../src/jobs/topology.js'
import {UploadRepository} from '../../src/uploads/upload-repository.js'
import {UploadStatus} from '../../src/uploads/upload-status.js'
import {freshSchema} from './node.js'
import {requireService, TEST_AMQP_URL, TEST_DATABASE_URL} from './services.js'

export interface TestDatabase {
  db: DataSource
  schema: string
  drop(): Promise<void>
}

export async function openTestDatabase(): Promise<TestDatabase> {
  const schema = await freshSchema()
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ingest-pipeline-'))
  const db = await openDatabase({databaseUrl: TEST_DATABASE_URL, databaseSchema: schema.schema, dataDir})
  return {
    db,
    schema: schema.schema,
    async drop() {
      if (db.isInitialized) await db.destroy()
      await schema.drop()
      await rm(dataDir, {recursive: true, force: true})
    },
  }
}

export function testPrefix(): string {
  return `t${randomBytes(5).toString('hex')}`
}

export function randomId(): string {
  return randomBytes(8).toString('hex')
}

/** Inserts an upload and completes it: its upload.completed row is in the outbox. */
export async function completedUpload(db: DataSource, id = randomId()): Promise<string> {
  const uploads = new UploadRepository(db)
  await uploads.insert({
    id,
    owner: null,
    filename: 'clip.mp4',
    filetype: 'video/mp4',
    metadata: {},
    size: 4,
    bytesReceived: 4,
    status: UploadStatus.Uploading,
    nodeId: 'test-node',
    sha256: null,
    md5: null,
   
    failureReason: null,
    expiresAt: null,
    completedAt: null,
  })
  await uploads.complete(id, {sha256: 'a'.repeat(64), md5: 'b'.repeat(32)})
  return id
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** A plain amqplib channel to look at queues the way an operator would. */
export async function inspector(): Promise<{channel: amqp.Channel; close(): Promise<void>}> {
  await requireService('RabbitMQ', TEST_AMQP_URL)
  const connection = await amqp.connect(TEST_AMQP_URL)
  const channel = await connection.createChannel()
  return {channel, close: () => connection.close().catch(() => {})}
}

/** Removes everything declareTopology made: each test cleans up its own queue prefix. */
export async function deleteTopology(channel: Channel, t: Topology): Promise<void> {
  for (const kind of t.kinds) {
    await channel.deleteQueue(t.workQueue(kind))
    await channel.deleteQueue(t.deadQueue(kind))
  }
  for (const delay of t.retryDelays) await channel.deleteQueue(t.delayQueue(delay))
  for (const exchange of [t.eventsExchange, t.workExchange, t.retryExchange, t.deadExchange]) await channel.deleteExchange(exchange)
}

export async function removeTopology(t: Topology): Promise<void> {
  const {channel, close} = await inspector()
  try {
    await deleteTopology(channel, t)
  } finally {
    await close()
  }
}

/** Takes every message from a dead-letter queue, with the reason the pipeline gave. */
export async function drainDeadLetters(channel: amqp.Channel, queue: string): Promise<Array<{reason: string | undefined; body: string}>> {
  const out: Array<{reason: string | undefined; body: string}> = []
  for (;;) {
    const message = await channel.get(queue, {noAck: true})
    if (!message) return out
    const reason = message.properties.headers?.['x-dead-reason'] as string | undefined
    out.push({reason, body: message.content.toString('utf8')})
  }
}
