/**
 * Fan-out across a real (shaped) network: three nodes, each in a host of its own on the network
 * testbed (test/support/netns.ts, 100 Mbit/s links), PostgreSQL reached through the gateway.
 * node1 sends its artifacts (one large file, resumable, and small ones in bundles) along the
 * chain node2 -> node3 (replica-chain.ts); mid-copy, the last peer's link (node3) is cut and
 * restored, and the peer in the middle (node2, forwarding to node3) is SIGKILLed and restarted.
 * At the end every live peer holds every artifact whole, with a verified `replicas` row, and no
 * file a peer could serve was ever partial (checked while the copies ran and after each fault).
 * Needs root (network namespaces); without it the test fails and says why.
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
import {createTestbed, testbedUnavailable, type Testbed} from '../support/netns.js'
import {freshSchema} from '../support/node.js'
import {startProcessCluster, type ProcessCluster} from '../support/process-cluster.js'
import type {NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'
import {pause} from './support.js'

const SECRET = 'network-fanout-fault-secret-0123456789-abcdef'
const PEERS = ['node2', 'node3']

describe('chain fan-out over a shaped network, the last peer\'s link cut and the middle peer killed mid-copy', {timeout: 240_000}, () => {
  let dir: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let testbed: Testbed | undefined
  let db: pg.Client | undefined
  let cluster: ProcessCluster<NodeProcess> | undefined

  before(async () => {
    const unavailable = testbedUnavailable()
    if (unavailable) throw new Error(`this fault test needs the network testbed: ${unavailable}`)
    dir = await mkdtemp(path.join(os.tmpdir(), 'fault-network-fanout-'))
    schema = await freshSchema()
    const {hostname, port} = new URL(TEST_DATABASE_URL)
    testbed = await createTestbed({hosts: 3, rate: '100mbit', database: {host: hostname, port: Number(port || 5432)}})
  })
  after(async () => {
    await cluster?.kill()
    await testbed?.stop()
    await db?.end()
    await schema?.drop()
    await rm(dir, {recursive: true, force: true})
  })

  it('ends with every artifact on every peer, whole and recorded, and never served a partial file', async () => {
    const bed = testbed!
    cluster = await startProcessCluster({
      nodes: 3,
      dir,
      hosts: bed.hosts,
      env: {
        DATABASE_URL: bed.databaseUrl(TEST_DATABASE_URL),
        DATABASE_SCHEMA: schema.schema,
        CLUSTER_SECRET: SECRET,
        NODE_HEARTBEAT_INTERVAL: '300ms',
        NODE_TTL: '4s',
        REPLICATION_RECONCILE_INTERVAL: '500ms',
        LOG_LEVEL: 'info',
      },
    })
    const nodes = cluster.nodes
    db = new pg.Client({connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema.schema}`})
    await db.connect()

    // node1's artifacts, as the media consumers leave them: 32 MiB (~3 s per copy on its link) and 120 small ones.
    const uploadId = new URL(await createUpload(nodes[0]!.url, 1)).pathname.split('/').pop()!
    const files: Record<string, Buffer> = {'video.mp4': randomBytes(32 << 20)}
    for (let i = 0; i < 120; i++) files[`${['720p', '360p'][i % 2]}/segment_${String(i).padStart(3, '0')}.ts`] = randomBytes(20_000 + ((i * 7919) % 150_000))
    const expected = new Map(Object.entries(files).map(([relative, data]) => [relative, sha256(data)]))
    await placeArtifacts(db, {id: 'node1', dataDir: path.join(dir, 'node1')}, uploadId, files)

    /** Every file a client could be served from the peer right now (no dot-names) is whole. */
    const checkVisible = async (peer: string) => {
      const root = path.join(dir, peer, 'media', uploadId)
      for (const entry of await readdir(root, {recursive: true, withFileTypes: true}).catch(() => [])) {
        if (!entry.isFile() || entry.name.startsWith('.')) continue
        const relative = path.relative(root, path.join(entry.parentPath, entry.name)).split(path.sep).join('/')
        assert.equal(sha256(await readFile(path.join(entry.parentPath, entry.name))), expected.get(relative), `${relative} visible on ${peer} but not whole`)
      }
    }
    const recorded = (peer: string) => verifiedReplicas(db!, uploadId, peer)
    const partOf = (peer: string) => path.join(dir, peer, 'media', uploadId, '.replica-video.mp4.part')
    const partSize = (peer: string) => stat(partOf(peer)).then((s) => s.size, () => 0)

    // Fault 1: node3's link goes down once its copy (forwarded by node2) is a quarter in, and comes back 4 s later.
    for (const until = Date.now() + 60_000; Date.now() < until && (await partSize('node3')) < (8 << 20); ) await pause(20)
    assert.ok((await partSize('node3')) >= 8 << 20, 'node3 was receiving the large artifact before its link was cut')
    await bed.cutLink(bed.hosts[2]!)
    const atCut = await partSize('node3')
    process.stdout.write(`# node3's link cut with ${atCut >> 20} MiB of the large copy written\n`)
    // Fault 2, meanwhile: node2, the middle of the chain, is killed with half of its copy in.
    for (const until = Date.now() + 60_000; Date.now() < until && (await partSize('node2')) < (16 << 20) && (await recorded('node2')) === 0; ) await pause(20)
    await nodes[1]!.kill('SIGKILL')
    process.stdout.write(`# node2 killed with ${(await partSize('node2')) >> 20} MiB of the large copy written, ${await recorded('node2')} copies recorded\n`)
    await checkVisible('node2')
    await pause(4000)
    // What was already in flight may land; nothing more crosses a link that is down.
    assert.ok((await partSize('node3')) - atCut < 2 << 20, 'node3 received next to nothing while its link was down')
    await bed.restoreLink(bed.hosts[2]!)
    await checkVisible('node3')
    await cluster.restart(1)

    const total = Object.keys(files).length
    for (const until = Date.now() + 150_000; Date.now() < until; await pause(300)) {
      for (const peer of PEERS) await checkVisible(peer)
      if ((await recorded('node2')) === total && (await recorded('node3')) === total) break
    }
    for (const peer of PEERS) {
      assert.equal(await recorded(peer), total, `every artifact has a verified replica row for ${peer}`)
      for (const [relative, digest] of expected) {
        assert.equal(sha256(await readFile(path.join(dir, peer, 'media', uploadId, ...relative.split('/')))), digest, `${relative} on ${peer}`)
      }
      const leftovers = (await readdir(path.join(dir, peer, 'media', uploadId), {recursive: true})).filter((name) => path.basename(String(name)).startsWith('.'))
      assert.deepEqual(leftovers, [], `no partial copy is left behind on ${peer}`)
    }
    const node3Received = nodes[2]!.output().split('\n').filter((line) => line.includes('"msg":"replica')).map((line) => JSON.parse(line) as {from: string})
    assert.ok(node3Received.some((l) => l.from === 'node2'), 'node3 received copies forwarded by node2 (the chain), not only from node1')
  })
})
