/**
 * Private playback in a cluster (MEDIA_SIGNING_SECRET on every node): replication still reads
 * the holder's /media with the cluster's signature instead of a token, and a node without a
 * copy forwards a client's token request to one that has it, which serves it.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import pg from 'pg'
import {MediaTokens} from '../src/media/media-tokens.js'
import {placeArtifacts, sha256, verifiedReplicas} from './support/artifacts.js'
import {createUpload} from './support/http.js'
import {freshSchema} from './support/node.js'
import {startProcessCluster, type ProcessCluster} from './support/process-cluster.js'
import type {NodeProcess} from './support/process-node.js'
import {TEST_DATABASE_URL} from './support/services.js'

const MEDIA_SECRET = 'cluster-private-media-signing-secret-0123456789'

describe('private playback across a cluster', {timeout: 90_000}, () => {
  let root: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let db: pg.Client
  let cluster: ProcessCluster<NodeProcess> | undefined

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'cluster-private-'))
    schema = await freshSchema()
  })
  after(async () => {
    await cluster?.kill()
    await db?.end()
    await schema?.drop()
    await rm(root, {recursive: true, force: true})
  })

  it('replicates with the secret set, and a node without a copy serves a token request through the holder', async () => {
    cluster = await startProcessCluster({
      nodes: 2,
      dir: root,
      env: {
        DATABASE_URL: TEST_DATABASE_URL,
        DATABASE_SCHEMA: schema.schema,
        CLUSTER_SECRET: 'cluster-private-cluster-secret-0123456789-abcd',
        MEDIA_SIGNING_SECRET: MEDIA_SECRET,
        NODE_HEARTBEAT_INTERVAL: '300ms',
        NODE_TTL: '1500ms',
        REPLICATION_RECONCILE_INTERVAL: '500ms',
      },
    })
    const [node1, node2] = cluster.nodes as [NodeProcess, NodeProcess]
    db = new pg.Client({connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema.schema}`})
    await db.connect()
    const uploadId = new URL(await createUpload(node1.url, 0)).pathname.split('/').pop()!
    const files: Record<string, Buffer> = {'video.mp4': randomBytes(3 << 20), 'poster.jpg': randomBytes(5000)}
    await placeArtifacts(db, {id: 'node1', dataDir: path.join(root, 'node1')}, uploadId, files)

    // Replication reads node1's /media signed as a peer, not with a token.
    for (const deadline = Date.now() + 30_000; Date.now() < deadline && (await verifiedReplicas(db, uploadId, 'node2')) < 2; ) await new Promise((r) => setTimeout(r, 200))
    assert.equal(await verifiedReplicas(db, uploadId, 'node2'), 2, 'both artifacts reached node2 with private playback on')

    // node2 loses its copy: a request to it is forwarded to node1.
    await rm(path.join(root, 'node2', 'media', uploadId, 'video.mp4'))
    await db.query(`DELETE FROM replicas WHERE node_id = 'node2'`)
    const token = await new MediaTokens(MEDIA_SECRET, 60_000).sign(uploadId)
    const url = `${node2.url}/media/${uploadId}/video.mp4`
    assert.equal((await fetch(url)).status, 401, 'no token: refused, also where the file is forwarded')
    const other = await new MediaTokens(MEDIA_SECRET, 60_000).sign('another-upload')
    assert.equal((await fetch(`${url}?token=${other}`)).status, 403)
    const whole = await fetch(`${url}?token=${token}`)
    assert.equal(whole.status, 200)
    assert.equal(sha256(Buffer.from(await whole.arrayBuffer())), sha256(files['video.mp4']!))
    const range = await fetch(`${url}?token=${token}`, {headers: {Range: 'bytes=100-199'}})
    assert.equal(range.status, 206)
    assert.ok(Buffer.from(await range.arrayBuffer()).equals(files['video.mp4']!.subarray(100, 200)))
  })
})
