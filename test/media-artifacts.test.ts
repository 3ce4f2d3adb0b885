/**
 * Artifact rows: one per file of an upload (issue 17, point 1). The migration that merges the
 * master playlist's per-rendition rows, and saving a grown master playlist in place.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {createHash, randomBytes} from 'node:crypto'
import {xxhash128} from 'hash-wasm'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import type {DataSource} from 'typeorm'
import {ReplicaRepository} from '../src/cluster/replica-repository.js'
import {openDatabase} from '../src/db/database.js'
import {ArtifactPerPath1733300000000} from '../src/db/migrations/1733300000000-artifact-per-path.js'
import {describeFile} from '../src/media/artifact-files.js'
import {MediaRepository} from '../src/media/media-repository.js'

const hash = (c: string) => c.repeat(64)

describe('artifact rows, one per path', () => {
  let db: DataSource
  let dataDir: string
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'media-artifacts-'))
    db = await openDatabase({dataDir, databaseUrl: undefined, databaseSchema: undefined})
  })
  after(async () => {
    await db?.destroy()
    await rm(dataDir, {recursive: true, force: true})
  })

  const upload = async (id: string) =>
    db.query(`INSERT INTO uploads (id, size, bytes_received, status, node_id) VALUES ($1, 10, 10, 'ready', 'n1')`, [id])
  const artifactRows = (id: string) =>
    db.query(`SELECT kind, rendition, path, sha256, xxh128, size FROM artifacts WHERE upload_id = $1 ORDER BY path`, [id]) as Promise<Array<Record<string, string>>>
  const file = (p: string, c: string, size = 100) => ({path: p, size, sha256: hash(c), xxh128: hash(c).slice(0, 32), contentType: 'application/vnd.apple.mpegurl'})

  it('a described file carries its sha256 and its xxHash3-128 wire hash, taken in one read', async () => {
    await writeFile(path.join(dataDir, 'empty.ts'), '')
    const empty = await describeFile(dataDir, 'empty.ts')
    assert.equal(empty.xxh128, '99aa06d3014798d86001c324468d497f', 'the reference XXH3-128 of no bytes')
    const data = randomBytes(3 * 1024 * 1024 + 17)
    await writeFile(path.join(dataDir, 'segment.ts'), data)
    const described = await describeFile(dataDir, 'segment.ts')
    assert.equal(described.sha256, createHash('sha256').update(data).digest('hex'))
    assert.equal(described.xxh128, await xxhash128(data), 'the streamed hash equals the one-shot one')
    assert.equal(described.size, data.length)
  })

  it('the master playlist saved with each rendition is one row, holding the newest bytes', async () => {
    await upload('grow')
    const repo = new MediaRepository(db)
    await repo.artifacts.save('grow', 'n1', [{kind: 'hls', rendition: '360p', files: [file('hls/360p/index.m3u8', 'a')]}, {kind: 'hls', rendition: '', files: [file('hls/master.m3u8', 'b', 90)]}])
    await repo.artifacts.save('grow', 'n1', [{kind: 'hls', rendition: '720p', files: [file('hls/720p/index.m3u8', 'c')]}, {kind: 'hls', rendition: '', files: [file('hls/master.m3u8', 'd', 140)]}])
    const rows = await artifactRows('grow')
    assert.deepEqual(
      rows.filter((r) => r.path === 'hls/master.m3u8').map((r) => [r.rendition, r.sha256, r.xxh128, Number(r.size)]),
      [['', hash('d'), hash('d').slice(0, 32), 140]]
    )
    assert.equal((await repo.artifacts.find('grow', 'hls/master.m3u8'))?.sha256, hash('d'))
  })

  it('a replica of the old master playlist no longer counts as a copy, so fan-out sends the new one', async () => {
    const repo = new MediaRepository(db)
    const replicas = new ReplicaRepository(db)
    await repo.artifacts.save('grow', 'n1', [{kind: 'hls', rendition: '', files: [file('hls/master.m3u8', 'e', 150)]}])
    const before = (await repo.artifacts.find('grow', 'hls/master.m3u8'))!
    await replicas.record(before, 'n2')
    assert.deepEqual(await replicas.holders(before), ['n1', 'n2'])
    await repo.artifacts.save('grow', 'n1', [{kind: 'hls', rendition: '', files: [file('hls/master.m3u8', 'f', 190)]}])
    const after = (await repo.artifacts.find('grow', 'hls/master.m3u8'))!
    assert.equal(after.id, before.id, 'updated in place')
    assert.deepEqual(await replicas.holders(after), ['n1'], 'n2 holds the old bytes: it is sent again')
  })

  it('the migration keeps the newest row of each path and makes rows unique on (upload, path)', async () => {
    const migration = new ArtifactPerPath1733300000000()
    const runner = db.createQueryRunner()
    try {
      // The embedded database has one connection: everything goes through the runner holding it.
      await migration.down(runner)
      await runner.query(`INSERT INTO uploads (id, size, bytes_received, status, node_id) VALUES ('old', 10, 10, 'ready', 'n1')`)
      const insert = (rendition: string, p: string, c: string, at: string) =>
        runner.query(
          `INSERT INTO artifacts (upload_id, kind, rendition, path, size, sha256, content_type, node_id, created_at, updated_at) VALUES ('old', 'hls', $1, $2, 1, $3, 'x', 'n1', $4, $4)`,
          [rendition, p, hash(c), at]
        )
      await insert('360p', 'hls/master.m3u8', 'a', '2026-01-01T00:00:01Z')
      await insert('720p', 'hls/master.m3u8', 'b', '2026-01-01T00:00:03Z')
      await insert('480p', 'hls/master.m3u8', 'c', '2026-01-01T00:00:02Z')
      await insert('360p', 'hls/360p/index.m3u8', 'd', '2026-01-01T00:00:01Z')
      await migration.up(runner)
    } finally {
      await runner.release()
    }
    assert.deepEqual(
      (await artifactRows('old')).map((r) => [r.rendition, r.path, r.sha256]),
      [['360p', 'hls/360p/index.m3u8', hash('d')], ['', 'hls/master.m3u8', hash('b')]]
    )
    await assert.rejects(db.query(`INSERT INTO artifacts (upload_id, kind, rendition, path, size, sha256, content_type, node_id) VALUES ('old', 'poster', '', 'hls/master.m3u8', 1, $1, 'x', 'n1')`, [hash('9')]), /unique|duplicate/i)
  })
})
