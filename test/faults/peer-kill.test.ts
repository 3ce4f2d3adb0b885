/**
 * A peer SIGKILLed again and again while it receives a fan-out (a large artifact sent alone and
 * resumable, and hundreds of small ones in bundles), restarted on the same port and data
 * directory each time. The sender's catch-up keeps sending; after the last restart every copy
 * arrives, verified: the peer holds each artifact with its sha256 and a `replicas` row, and at
 * no point did it show a file that was not whole (every visible file checked after each kill),
 * and no partial file is left behind.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdtemp, readdir, readFile, rm, stat} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import pg from 'pg'
import {placeArtifacts, sha256, verifiedReplicas} from '../support/artifacts.js'
import {createUpload} from '../support/http.js'
import {freshSchema} from '../support/node.js'
import {startProcessCluster, type ProcessCluster} from '../support/process-cluster.js'
import type {NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'
import {pause, seedFrom} from './support.js'

const SECRET = 'peer-kill-fault-secret-0123456789-abcdefgh'
const KILLS = 4

describe('a peer killed while it receives a fan-out', {timeout: 180_000}, () => {
  let dir: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let db: pg.Client
  let cluster: ProcessCluster<NodeProcess> | undefined

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fault-peer-kill-'))
    schema = await freshSchema()
  })
  after(async () => {
    await cluster?.kill()
    await db?.end()
    await schema?.drop()
    await rm(dir, {recursive: true, force: true})
  })

  it('ends with every artifact on the peer, whole and recorded, after SIGKILLs at random points', async () => {
    const rng = seedFrom('FAULT_SEED')
    cluster = await startProcessCluster({
      nodes: 2,
      dir,
      env: {
        DATABASE_URL: TEST_DATABASE_URL,
        DATABASE_SCHEMA: schema.schema,
        CLUSTER_SECRET: SECRET,
        NODE_HEARTBEAT_INTERVAL: '200ms',
        NODE_TTL: '3s',
        REPLICATION_RECONCILE_INTERVAL: '300ms',
      },
    })
    const node1 = cluster.nodes[0]!
    db = new pg.Client({connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema.schema}`})
    await db.connect()

    // Artifacts on node1, as the media consumers leave them: one large file and 300 small ones.
    const uploadId = new URL(await createUpload(node1.url, 1)).pathname.split('/').pop()!
    const files: Record<string, Buffer> = {'video.mp4': randomBytes(24 << 20)}
    for (let i = 0; i < 300; i++) files[`${['1080p', '720p', '360p'][i % 3]}/segment_${String(i).padStart(3, '0')}.ts`] = randomBytes(rng.int(20_000, 200_000))
    await placeArtifacts(db, {id: 'node1', dataDir: path.join(dir, 'node1')}, uploadId, files)

    const peerDir = path.join(dir, 'node2', 'media', uploadId)
    /** Every file a client could be served from node2 right now (no dot-names) is whole. */
    const checkVisible = async () => {
      for (const entry of await readdir(peerDir, {recursive: true, withFileTypes: true}).catch(() => [])) {
        if (!entry.isFile() || entry.name.startsWith('.')) continue
        const relative = path.relative(peerDir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/')
        assert.equal(sha256(await readFile(path.join(entry.parentPath, entry.name))), sha256(files[relative]!), `${relative} visible on node2 but not whole`)
      }
    }

    // A kill point: once `copies` more files have landed in this life (a bundle's entries land one
    // by one; their rows come at the bundle's end), or `fraction` of the large one is written.
    const killPoints = Array.from({length: KILLS}, () => ({copies: rng.int(1, 80), fraction: rng.next()}))
    process.stdout.write(`# kill points: ${killPoints.map((k) => `+${k.copies} copies or ${(k.fraction * 100).toFixed(0)}% of the large one`).join('; ')}\n`)
    const largePart = path.join(peerDir, '.replica-video.mp4.part')
    const largeSize = files['video.mp4']!.length
    let node2 = cluster.nodes[1]!
    const recordedOnNode2 = () => verifiedReplicas(db, uploadId, 'node2')
    const landed = async () => (await readdir(peerDir, {recursive: true}).catch(() => [])).filter((name) => /\.(ts|mp4)$/.test(String(name)) && !path.basename(String(name)).startsWith('.')).length
    for (const point of killPoints) {
      const start = await landed()
      const partSize = async () => (await stat(largePart).catch(() => undefined))?.size ?? 0
      // The large copy resumes where the last life left it: its fraction counts from there.
      const partAtStart = await partSize()
      for (const until = Date.now() + 10_000; Date.now() < until; await pause(5)) {
        if ((await landed()) >= start + point.copies) break
        if ((await partSize()) >= partAtStart + point.fraction * (largeSize - partAtStart)) break
      }
      await node2.kill('SIGKILL')
      process.stdout.write(`# killed with ${await landed()} files landed, ${await recordedOnNode2()} of ${Object.keys(files).length} copies recorded\n`)
      await checkVisible()
      node2 = await cluster.restart(1)
    }

    const deadline = Date.now() + 90_000
    let recorded = await recordedOnNode2()
    while (Date.now() < deadline && recorded < Object.keys(files).length) {
      await pause(300)
      recorded = await recordedOnNode2()
    }
    assert.equal(recorded, Object.keys(files).length, 'every artifact has a verified replica row for node2')
    for (const [relative, data] of Object.entries(files)) {
      assert.equal(sha256(await readFile(path.join(peerDir, ...relative.split('/')))), sha256(data), `${relative} on node2`)
    }
    const leftovers = (await readdir(peerDir, {recursive: true})).filter((name) => path.basename(String(name)).startsWith('.'))
    assert.deepEqual(leftovers, [], 'no partial copy is left behind')
  })
})
