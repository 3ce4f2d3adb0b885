/**
 * A peer frozen (SIGSTOP: a hung VM, a link gone without a reset) in the middle of receiving a
 * large artifact. Its socket stays open and its window shuts, so nothing ever fails by itself:
 * without PEER_IDLE_TIMEOUT the copy to it, and every copy fed by the same read, would wait
 * forever. Here direct copies share one read (REPLICATION_CHAIN=false): the other peer must
 * still get its copy, whole and recorded, while the frozen one is frozen; once it thaws, the
 * catch-up loop completes it too.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
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
import {pause} from './support.js'

const SECRET = 'peer-freeze-fault-secret-0123456789-abcdef'

describe('a peer frozen while it receives a fan-out', {timeout: 120_000}, () => {
  let dir: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let db: pg.Client
  let cluster: ProcessCluster<NodeProcess> | undefined

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fault-peer-freeze-'))
    schema = await freshSchema()
  })
  after(async () => {
    for (const node of cluster?.nodes ?? []) node.child.kill('SIGCONT')
    await cluster?.kill()
    await db?.end()
    await schema?.drop()
    await rm(dir, {recursive: true, force: true})
  })

  it('the other peer gets its copy while the frozen one is frozen; the frozen one gets it once it thaws', async () => {
    cluster = await startProcessCluster({
      nodes: 3,
      dir,
      env: {
        DATABASE_URL: TEST_DATABASE_URL,
        DATABASE_SCHEMA: schema.schema,
        CLUSTER_SECRET: SECRET,
        NODE_HEARTBEAT_INTERVAL: '200ms',
        NODE_TTL: '3s',
        REPLICATION_RECONCILE_INTERVAL: '300ms',
        REPLICATION_CHAIN: 'false',
        PEER_IDLE_TIMEOUT: '1s',
      },
    })
    const [node1, , node3] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess]
    db = new pg.Client({connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema.schema}`})
    await db.connect()
    const recordedOn = (nodeId: string) => verifiedReplicas(db, uploadId, nodeId)

    const uploadId = new URL(await createUpload(node1.url, 1)).pathname.split('/').pop()!
    const video = randomBytes(96 << 20) // far more than the socket buffers between two nodes hold
    await placeArtifacts(db, {id: 'node1', dataDir: path.join(dir, 'node1')}, uploadId, {'video.mp4': video})

    // Freeze node3 once its copy has begun.
    const part3 = path.join(dir, 'node3', 'media', uploadId, '.replica-video.mp4.part')
    for (const until = Date.now() + 30_000; Date.now() < until; await pause(2)) {
      if (((await stat(part3).catch(() => undefined))?.size ?? 0) > 0) break
    }
    assert.ok(((await stat(part3).catch(() => undefined))?.size ?? 0) > 0, "node3's copy began")
    node3.child.kill('SIGSTOP')
    const frozenAt = Date.now()

    const deadline = Date.now() + 30_000
    while (Date.now() < deadline && (await recordedOn('node2')) < 1) await pause(200)
    assert.equal(await recordedOn('node2'), 1, 'node2 holds a verified copy while node3 is still frozen')
    assert.equal(sha256(await readFile(path.join(dir, 'node2', 'media', uploadId, 'video.mp4'))), sha256(video))
    process.stdout.write(`# node2's copy recorded ${Date.now() - frozenAt} ms after node3 froze\n`)
    assert.equal(await recordedOn('node3'), 0, 'node3, frozen, recorded nothing')

    node3.child.kill('SIGCONT')
    const thawDeadline = Date.now() + 60_000
    while (Date.now() < thawDeadline && (await recordedOn('node3')) < 1) await pause(300)
    assert.equal(await recordedOn('node3'), 1, 'node3 gets its copy once it thaws')
    assert.equal(sha256(await readFile(path.join(dir, 'node3', 'media', uploadId, 'video.mp4'))), sha256(video))
  })
})
