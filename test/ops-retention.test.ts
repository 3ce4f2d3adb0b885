/**
 * The retention job against PostgreSQL: it deletes expired and terminated uploads' rows once
 * their grace period has passed, removes this node's completed originals once their artifacts
 * exist (and only with ORIGINAL_RETENTION set), marks what it removed, leaves everything else as
 * it was, and runs on one node at a time.
 */
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import pg from 'pg'
import pino from 'pino'
import type {DataSource} from 'typeorm'
import {UploadRepository} from '../src/uploads/upload-repository.js'
import {UploadRetention, type RetentionOptions} from '../src/uploads/retention.js'
import {UploadStatus} from '../src/uploads/upload-status.js'
import {openTestDatabase, type TestDatabase} from './support/pipeline-support.js'
import {TEST_DATABASE_URL} from './support/services.js'

const DAY = 86_400_000
const HERE = 'node-here'

describe('retention', {timeout: 60_000}, () => {
  let database: TestDatabase
  let db: DataSource
  let dir: string
  const file = (id: string) => path.join(dir, id)

  before(async () => {
    database = await openTestDatabase()
    db = database.db
    dir = await mkdtemp(path.join(os.tmpdir(), 'ingest-retention-'))
  })

  after(async () => {
    await database?.drop()
    await rm(dir, {recursive: true, force: true})
  })

  /** An upload row in a given state, `ageDays` old, with its file on disk when it is this node's. */
  async function upload(id: string, status: UploadStatus, ageDays: number, nodeId = HERE): Promise<void> {
    await new UploadRepository(db).insert({
      id, owner: null, filename: `${id}.mp4`, filetype: 'video/mp4', metadata: {}, size: 4, bytesReceived: 4, status, nodeId,
      sha256: null, md5: null, failureReason: null, expiresAt: null, completedAt: null,
    })
    const at = new Date(Date.now() - ageDays * DAY)
    const completedAt = ['completed', 'processing', 'ready'].includes(status) ? at : null
    await db.query(`UPDATE uploads SET updated_at = $2, created_at = $2, completed_at = $3 WHERE id = $1`, [id, at, completedAt])
    if (nodeId === HERE) await writeFile(file(id), 'abcd')
  }

  const artifact = (uploadId: string, kind = 'mp4') =>
    db.query(`INSERT INTO artifacts (upload_id, kind, rendition, path, size, sha256, content_type, node_id) VALUES ($1, $2, '', $3, 4, $4, 'video/mp4', $5)`, [
      uploadId, kind, `${kind}/${uploadId}`, 'c'.repeat(64), HERE,
    ])
  const job = (uploadId: string, kind: string, status: string) => db.query(`INSERT INTO jobs (upload_id, kind, status) VALUES ($1, $2, $3)`, [uploadId, kind, status])
  const ids = async () => ((await db.query(`SELECT id FROM uploads ORDER BY id`)) as Array<{id: string}>).map((r) => r.id)
  const removedAt = async (id: string) => ((await db.query(`SELECT original_removed_at FROM uploads WHERE id = $1`, [id])) as Array<{original_removed_at: Date | null}>)[0]?.original_removed_at

  const retention = (options: Partial<RetentionOptions> = {}) =>
    new UploadRetention(db, pino({level: 'silent'}), {nodeId: HERE, filePath: file, expiredGraceMs: 7 * DAY, originalRetentionMs: 30 * DAY, eventRetentionMs: 7 * DAY, intervalMs: 0, ...options})

  test('removes what it should and nothing else', async () => {
    await upload('expired-old', UploadStatus.Expired, 8)
    await upload('expired-recent', UploadStatus.Expired, 1)
    await upload('terminated-old', UploadStatus.Terminated, 8)
    await job('terminated-old', 'transcode', 'dead')
    await upload('expired-elsewhere', UploadStatus.Expired, 8, 'node-other')
    await upload('expired-with-artifacts', UploadStatus.Expired, 8)
    await artifact('expired-with-artifacts')
    await upload('uploading-old', UploadStatus.Uploading, 8)
    await upload('failed-old', UploadStatus.Failed, 40)

    await upload('ready-old', UploadStatus.Ready, 40)
    await artifact('ready-old', 'mp4')
    await artifact('ready-old', 'hls')
    await job('ready-old', 'transcode', 'succeeded')
    await upload('ready-recent', UploadStatus.Ready, 1)
    await artifact('ready-recent')
    await upload('ready-no-artifacts', UploadStatus.Ready, 40)
    await upload('ready-only-snapshots', UploadStatus.Ready, 40)
    await artifact('ready-only-snapshots', 'poster')
    await upload('ready-job-running', UploadStatus.Ready, 40)
    await artifact('ready-job-running')
    await job('ready-job-running', 'transcode', 'running')
    await upload('ready-elsewhere', UploadStatus.Ready, 40, 'node-other')
    await artifact('ready-elsewhere')
    await upload('completed-old', UploadStatus.Completed, 40)
    await artifact('completed-old')

    // Originals are kept unless ORIGINAL_RETENTION is set.
    const rowsOnly = await retention({originalRetentionMs: undefined}).runOnce()
    assert.deepEqual(rowsOnly?.deletedRows.sort(), ['expired-elsewhere', 'expired-old', 'terminated-old'])
    assert.deepEqual(rowsOnly?.removedOriginals, [])
    assert.ok(existsSync(file('ready-old')))

    const report = await retention().runOnce()
    assert.deepEqual(report, {deletedRows: [], removedOriginals: ['ready-old'], prunedEvents: 0})

    assert.deepEqual(await ids(), [
      'completed-old', 'expired-recent', 'expired-with-artifacts', 'failed-old', 'ready-elsewhere', 'ready-job-running',
      'ready-no-artifacts', 'ready-old', 'ready-only-snapshots', 'ready-recent', 'uploading-old',
    ])
    assert.deepEqual(await db.query(`SELECT upload_id FROM jobs WHERE upload_id = 'terminated-old'`), [], 'the jobs of deleted uploads go with them')
    assert.ok(!existsSync(file('expired-old')), 'a leftover file of a deleted row is removed')

    assert.ok(!existsSync(file('ready-old')), 'the original is removed')
    assert.ok((await removedAt('ready-old')) instanceof Date, 'and marked as removed')
    assert.equal(((await db.query(`SELECT count(*)::int AS n FROM artifacts WHERE upload_id = 'ready-old'`)) as Array<{n: number}>)[0]!.n, 2, 'its artifacts stay')
    for (const id of ['ready-recent', 'ready-no-artifacts', 'ready-only-snapshots', 'ready-job-running', 'completed-old', 'failed-old', 'uploading-old', 'expired-recent', 'expired-with-artifacts']) {
      assert.ok(existsSync(file(id)), `${id} keeps its file`)
      assert.equal(await removedAt(id), null, `${id} is not marked`)
    }
    assert.deepEqual(await retention().runOnce(), {deletedRows: [], removedOriginals: [], prunedEvents: 0}, 'a second pass finds nothing')
  })

  test('prunes published events past EVENT_RETENTION, with their delivered webhooks; keeps unpublished, recent and still-owed ones', async () => {
    await upload('events-up', UploadStatus.Ready, 1)
    const event = async (name: string, publishedDaysAgo: number | null, delivery?: 'owed' | 'delivered') => {
      const published = publishedDaysAgo === null ? null : new Date(Date.now() - publishedDaysAgo * DAY)
      const [{id}] = (await db.query(`INSERT INTO outbox (topic, upload_id, payload, published_at) VALUES ($1, 'events-up', '{}', $2) RETURNING id`, [name, published])) as [{id: string}]
      if (delivery) await db.query(`INSERT INTO webhook_deliveries (event_id, upload_id, topic, delivered_at) VALUES ($1, 'events-up', $2, $3)`, [id, name, delivery === 'delivered' ? published : null])
    }
    await event('old', 8)
    await event('old-delivered', 9, 'delivered')
    await event('old-owed', 10, 'owed')
    await event('recent', 1, 'delivered')
    await event('unpublished', null)
    const report = await retention().runOnce()
    assert.equal(report?.prunedEvents, 2)
    const left = (await db.query(`SELECT topic FROM outbox WHERE upload_id = 'events-up' ORDER BY topic`)) as Array<{topic: string}>
    assert.deepEqual(left.map((r) => r.topic), ['old-owed', 'recent', 'unpublished'])
    const deliveries = (await db.query(`SELECT topic FROM webhook_deliveries WHERE upload_id = 'events-up' ORDER BY topic`)) as Array<{topic: string}>
    assert.deepEqual(deliveries.map((r) => r.topic), ['old-owed', 'recent'], 'the delivered webhook of a pruned event goes with it; an owed one stays')
    assert.equal((await retention().runOnce())?.prunedEvents, 0)
  })

  test('runs on one node at a time', async () => {
    await upload('expired-locked', UploadStatus.Expired, 8)
    const other = new pg.Client({connectionString: TEST_DATABASE_URL})
    await other.connect()
    try {
      await other.query(`SELECT pg_advisory_lock(hashtext('video-ingest:retention'))`)
      assert.equal(await retention().runOnce(), null, 'another node holds the lock: this one skips its pass')
      assert.ok((await ids()).includes('expired-locked'))
      await other.query(`SELECT pg_advisory_unlock(hashtext('video-ingest:retention'))`)
      assert.deepEqual((await retention().runOnce())?.deletedRows, ['expired-locked'])
    } finally {
      await other.end()
    }
  })
})
