/**
 * Fan-out between three real nodes (in this process, one PostgreSQL schema, each its own data
 * directory): small artifacts in bundles, large ones one by one and resumable, each copy
 * verified and recorded, nothing sent twice, REPLICATION_FACTOR honoured, and every malformed or
 * unsigned replication request refused with the right status. node3 sits behind a proxy that
 * can cut connections, as a bad network between nodes would.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {Writable} from 'node:stream'
import {after, before, describe, it} from 'node:test'
import pino from 'pino'
import tar from 'tar-stream'
import {signRequest} from '../src/cluster/cluster-signature.js'
import {BUNDLE_FILE_LIMIT} from '../src/cluster/replica-bundle.js'
import {Replicator} from '../src/cluster/replication.js'
import {placeArtifacts, sha256, xxh128} from './support/artifacts.js'
import {startFlakyProxy, type FlakyProxy} from './support/flaky-proxy.js'
import {createUpload, request} from './support/http.js'
import {freshSchema, startTestNode, type TestNode} from './support/node.js'
import {freePort} from './support/process-node.js'
import {TEST_DATABASE_URL} from './support/services.js'

const SECRET = 'replication-test-secret-0123456789-abcdef'
const idOf = (url: string) => new URL(url).pathname.split('/').pop()!

describe('fan-out of artifacts to peers', () => {
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let proxy: FlakyProxy
  const nodes: TestNode[] = []
  /** node2's log lines, to see what it says about refused requests. */
  const node2Log: string[] = []

  before(async () => {
    schema = await freshSchema()
    const shared = (id: string) => ({
      nodeId: id,
      databaseUrl: TEST_DATABASE_URL,
      databaseSchema: schema.schema,
      clusterSecret: SECRET,
      nodeHeartbeatInterval: 300,
      nodeTtl: 10_000,
      replicationReconcileInterval: 0,
    })
    nodes.push(await startTestNode('postgres', shared('node1')))
    const capture = new Writable({
      write(chunk: Buffer, _enc, done) {
        node2Log.push(chunk.toString())
        done()
      },
    })
    nodes.push(await startTestNode('postgres', shared('node2'), undefined, pino({level: 'info'}, capture)))
    const port = await freePort()
    proxy = await startFlakyProxy(`http://127.0.0.1:${port}`, Infinity)
    nodes.push(await startTestNode('postgres', {...shared('node3'), port, nodeUrl: proxy.url}))
  })

  after(async () => {
    await proxy?.close()
    for (const node of nodes.reverse()) await node.stop()
    await schema?.drop()
  })

  const node1 = () => nodes[0]!
  const node2 = () => nodes[1]!
  const node3 = () => nodes[2]!
  const replicator = () => node1().cluster.replicator

  /** A new upload on node1 holding `files` as its artifacts. */
  async function placeOnNode1(files: Record<string, Buffer>): Promise<string> {
    const uploadId = idOf(await createUpload(node1().url, 1))
    await placeArtifacts(node1().db, {id: 'node1', dataDir: node1().dataDir}, uploadId, files)
    return uploadId
  }

  /** `probe`'s value once it stops throwing (within 5 s). */
  async function eventually<T>(probe: () => Promise<T>): Promise<T> {
    for (const deadline = Date.now() + 5000; ; await new Promise((r) => setTimeout(r, 20))) {
      try {
        return await probe()
      } catch (error) {
        if (Date.now() > deadline) throw error
      }
    }
  }

  const segments = (count: number, size: number) => Object.fromEntries(Array.from({length: count}, (_, i) => [`720p/segment_${String(i).padStart(3, '0')}.ts`, randomBytes(size)]))

  async function replicaRows(uploadId: string): Promise<Array<{path: string; node_id: string}>> {
    return (await node1().db.query(
      `SELECT a.path, r.node_id FROM replicas r JOIN artifacts a ON a.id = r.artifact_id WHERE a.upload_id = $1 AND r.sha256 = a.sha256 ORDER BY a.path, r.node_id`,
      [uploadId]
    )) as Array<{path: string; node_id: string}>
  }

  async function assertCopies(node: TestNode, uploadId: string, files: Record<string, Buffer>): Promise<void> {
    for (const [relative, data] of Object.entries(files)) {
      const copy = await readFile(path.join(node.dataDir, 'media', uploadId, relative))
      assert.equal(sha256(copy), sha256(data), `${relative} on ${node.config.nodeId}`)
    }
  }

  it('sends small artifacts in bundles, verified, and records every copy', async () => {
    const files = {...segments(40, 50_000), '720p/index.m3u8': Buffer.from('#EXTM3U\n'), 'master.m3u8': Buffer.from('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n')}
    const uploadId = await placeOnNode1(files)
    const report = await replicator().replicateUpload(uploadId)
    assert.deepEqual(report.failed, [])
    assert.equal(report.sent, 42 * 2)
    await assertCopies(node2(), uploadId, files)
    await assertCopies(node3(), uploadId, files)
    const rows = await replicaRows(uploadId)
    assert.equal(rows.filter((r) => r.node_id === 'node2').length, 42)
    assert.equal(rows.filter((r) => r.node_id === 'node3').length, 42)
    const bundleLines = node2Log.map((line) => JSON.parse(line) as {msg: string; from?: string; chain?: unknown}).filter((l) => l.msg === 'replica bundle received')
    assert.ok(bundleLines.length > 0, 'node2 logs the bundles it takes')
    // One bundle left node1, for node2, which sent it on to node3 as it arrived.
    assert.deepEqual(bundleLines.at(-1)!.chain, [{node: 'node3', stored: 42}])
  })

  it('sends nothing again once every peer holds a verified copy', async () => {
    const files = segments(5, 10_000)
    const uploadId = await placeOnNode1(files)
    await replicator().replicateUpload(uploadId)
    const copy = path.join(node2().dataDir, 'media', uploadId, '720p/segment_000.ts')
    const before = (await stat(copy)).mtimeMs
    const bytesBefore = proxy.bytes
    const again = await replicator().replicateUpload(uploadId)
    assert.equal(again.sent, 0)
    assert.equal(again.skipped, 5 * 2)
    assert.equal(proxy.bytes, bytesBefore, 'not one byte went to node3')
    assert.equal((await stat(copy)).mtimeMs, before, "node2's copy was not rewritten")
  })

  it('resumes a large artifact cut mid-copy from the byte where it stopped', async () => {
    const size = BUNDLE_FILE_LIMIT + 4 * 1024 * 1024
    const files = {'video.mp4': randomBytes(size)}
    const uploadId = await placeOnNode1(files)
    proxy.cutEachConnectionAfter(5 * 1024 * 1024)
    try {
      const cut = await replicator().replicateUpload(uploadId)
      assert.deepEqual(
        cut.failed.map((f) => f.node),
        ['node3'],
        'node2 got its copy; the copy to node3 was cut'
      )
    } finally {
      proxy.cutEachConnectionAfter(Infinity)
    }
    const partial = path.join(node3().dataDir, 'media', uploadId, '.replica-video.mp4.part')
    // node3 notices each cut (the chain's copy, then node1's own) on its own time, and then keeps
    // the hash of what it holds beside it: the resumed copy need not re-read those bytes.
    const hashState = `${partial}.hash`
    const kept = await eventually(async () => {
      const [state, onDisk] = [await readFile(hashState), (await stat(partial)).size]
      assert.equal(Number(state.readBigUInt64BE(0)), onDisk, 'the kept hash state is of the bytes on disk')
      return onDisk
    })
    assert.ok(kept > 0 && kept < size, `node3 kept ${kept} bytes of the interrupted copy`)
    await assert.rejects(stat(path.join(node3().dataDir, 'media', uploadId, 'video.mp4')), 'nothing half-written is visible')

    const bytesBefore = proxy.bytes
    const resumed = await replicator().replicateUpload(uploadId)
    assert.deepEqual(resumed.failed, [])
    assert.equal(resumed.sent, 1)
    const sent = proxy.bytes - bytesBefore
    assert.ok(sent < size - kept + 64 * 1024, `only the missing bytes were sent again (${sent} bytes for ${size - kept} missing)`)
    await assertCopies(node3(), uploadId, files)
    await assertCopies(node2(), uploadId, files)
    await assert.rejects(stat(hashState), 'the kept hash state is gone with the partial')
  })

  it('resumes by re-reading the kept bytes when the kept hash state is not of them', async () => {
    const size = BUNDLE_FILE_LIMIT + 4 * 1024 * 1024
    const files = {'video.mp4': randomBytes(size)}
    const uploadId = await placeOnNode1(files)
    proxy.cutEachConnectionAfter(5 * 1024 * 1024)
    try {
      await replicator().replicateUpload(uploadId)
    } finally {
      proxy.cutEachConnectionAfter(Infinity)
    }
    const hashState = path.join(node3().dataDir, 'media', uploadId, '.replica-video.mp4.part.hash')
    const state = await eventually(() => readFile(hashState))
    state.writeBigUInt64BE(1n, 0) // the state of another length than the partial's
    await writeFile(hashState, state)
    const resumed = await replicator().replicateUpload(uploadId)
    assert.deepEqual(resumed.failed, [])
    await assertCopies(node3(), uploadId, files)
  })

  it('sends a large artifact once, along a chain: node2 forwards it to node3 while it arrives', async () => {
    const size = BUNDLE_FILE_LIMIT + 3 * 1024 * 1024
    const files = {'video.mp4': randomBytes(size)}
    const uploadId = await placeOnNode1(files)
    const logged = node2Log.length
    const bytesToNode3 = proxy.bytes
    const report = await replicator().replicateUpload(uploadId)
    assert.deepEqual(report.failed, [])
    assert.equal(report.sent, 2)
    await assertCopies(node2(), uploadId, files)
    await assertCopies(node3(), uploadId, files)
    const received = node2Log.slice(logged).map((line) => JSON.parse(line) as {msg: string; from?: string; chain?: unknown}).find((l) => l.msg === 'replica received')
    assert.equal(received?.from, 'node1', 'node2 received its copy from node1')
    assert.deepEqual(received?.chain, [{node: 'node3', status: 'sent'}], 'and sent it on to node3, which verified it')
    const toNode3 = proxy.bytes - bytesToNode3
    assert.ok(toNode3 >= size && toNode3 < size + 64 * 1024, `node3 was sent one copy (${toNode3} bytes for ${size})`)
    assert.deepEqual((await replicaRows(uploadId)).map((r) => r.node_id), ['node2', 'node3'], 'both copies recorded')

    // REPLICATION_CHAIN=false: node1 sends each peer its own copy.
    const star = await placeOnNode1({'video.mp4': randomBytes(size)})
    const parts = node1().cluster
    const direct = new Replicator(parts.cluster, parts.replicas, {dataDir: node1().dataDir, factor: 0, chain: false}, pino({level: 'silent'}))
    const before = node2Log.length
    assert.equal((await direct.replicateUpload(star)).sent, 2)
    const line = node2Log.slice(before).map((l) => JSON.parse(l) as {msg: string; chain?: unknown}).find((l) => l.msg === 'replica received')
    assert.deepEqual(line?.chain, [], 'node2 forwarded nothing')
  })

  it('keeps what a cut bundle delivered and then sends only the rest', async () => {
    const files = segments(20, 300_000)
    const uploadId = await placeOnNode1(files)
    proxy.cutEachConnectionAfter(2_500_000)
    try {
      const cut = await replicator().replicateUpload(uploadId)
      assert.ok(cut.failed.length > 0 && cut.failed.every((f) => f.node === 'node3'))
    } finally {
      proxy.cutEachConnectionAfter(Infinity)
    }
    // node3 notices the cut on its own time: wait for it to record what arrived whole.
    let kept = 0
    for (const deadline = Date.now() + 5000; kept === 0 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      kept = (await replicaRows(uploadId)).filter((r) => r.node_id === 'node3').length
    }
    assert.ok(kept > 0 && kept < 20, `node3 recorded the ${kept} entries that arrived whole`)
    const rest = await replicator().replicateUpload(uploadId)
    assert.deepEqual(rest.failed, [])
    assert.equal(rest.sent, 20 - kept)
    await assertCopies(node3(), uploadId, files)
  })

  it('sends each artifact to REPLICATION_FACTOR peers only, when it is set', async () => {
    const files = {...segments(3, 1000), 'video.mp4': randomBytes(BUNDLE_FILE_LIMIT + 1)}
    const uploadId = await placeOnNode1(files)
    const parts = node1().cluster
    const one = new Replicator(parts.cluster, parts.replicas, {dataDir: node1().dataDir, factor: 1}, pino({level: 'silent'}))
    const report = await one.replicateUpload(uploadId)
    assert.deepEqual(report.failed, [])
    assert.equal(report.sent, 4)
    const rows = await replicaRows(uploadId)
    for (const relative of Object.keys(files)) {
      assert.equal(rows.filter((r) => r.path === relative).length, 1, `${relative} has one replica besides node1's`)
    }
  })

  describe('a large copy sent to node2 by hand', () => {
    const size = BUNDLE_FILE_LIMIT + 100_000
    const put = (uploadId: string, data: Buffer, claimed: {sha256: string; xxh128?: string}) => {
      const target = `/internal/replicas/${uploadId}/video.mp4`
      const to = {id: 'node2', incarnation: node2().cluster.cluster.registry.incarnation!}
      const headers: Record<string, string> = {
        'x-artifact-sha256': claimed.sha256,
        ...(claimed.xxh128 ? {'x-artifact-xxh128': claimed.xxh128} : {}),
        'x-artifact-size': String(data.length),
        'upload-offset': '0',
        'content-length': String(data.length),
      }
      const signature = signRequest(SECRET, 'node1', to, {method: 'PUT', path: target, headers})
      return request('PUT', `${node2().url}${target}`, {headers: {...headers, 'x-cluster-signature': signature, 'content-type': 'application/octet-stream'}, body: data})
    }
    const flipped = (data: Buffer) => {
      const copy = Buffer.from(data)
      copy[Math.floor(copy.length / 2)]! ^= 0x01
      return copy
    }
    const onNode2 = (uploadId: string) => path.join(node2().dataDir, 'media', uploadId)

    it('refuses a copy with one flipped byte by its wire hash, keeps nothing of it, then takes the right bytes', async () => {
      const data = randomBytes(size)
      const uploadId = await placeOnNode1({'video.mp4': data})
      const claimed = {sha256: sha256(data), xxh128: await xxh128(data)}
      const bad = await put(uploadId, flipped(data), claimed)
      assert.equal(bad.status, 400)
      assert.match(bad.body, /does not match the artifact's xxh3-128/)
      await assert.rejects(stat(path.join(onNode2(uploadId), 'video.mp4')), 'nothing visible')
      await assert.rejects(stat(path.join(onNode2(uploadId), '.replica-video.mp4.part')), 'the bad partial is discarded')
      assert.deepEqual(await replicaRows(uploadId), [])
      const good = await put(uploadId, data, claimed)
      assert.equal(good.status, 201)
      assert.equal(sha256(await readFile(path.join(onNode2(uploadId), 'video.mp4'))), sha256(data))
      assert.deepEqual((await replicaRows(uploadId)).map((r) => r.node_id), ['node2'])
    })

    it('refuses a copy whose sender names another wire hash than the row: the artifact changed', async () => {
      const data = randomBytes(size)
      const uploadId = await placeOnNode1({'video.mp4': data})
      const res = await put(uploadId, data, {sha256: sha256(data), xxh128: '0'.repeat(32)})
      assert.equal(res.status, 409)
    })

    it('verifies a copy of an artifact whose row has no wire hash (made before it had one) by its sha256', async () => {
      const data = randomBytes(size)
      const uploadId = idOf(await createUpload(node1().url, 1))
      await placeArtifacts(node1().db, {id: 'node1', dataDir: node1().dataDir}, uploadId, {'video.mp4': data}, {wireHash: false})
      const bad = await put(uploadId, flipped(data), {sha256: sha256(data)})
      assert.equal(bad.status, 400)
      assert.match(bad.body, /does not match the artifact's sha256/)
      const good = await put(uploadId, data, {sha256: sha256(data)})
      assert.equal(good.status, 201)
      // And fan-out itself, to node3, by the same fallback.
      const report = await replicator().replicateUpload(uploadId)
      assert.deepEqual(report.failed, [])
      await assertCopies(node3(), uploadId, {'video.mp4': data})
      assert.deepEqual((await replicaRows(uploadId)).map((r) => r.node_id), ['node2', 'node3'])
    })
  })

  describe('a bundle sent to node2 by hand', () => {
    let uploadId: string
    const good = randomBytes(2000)
    before(async () => {
      uploadId = await placeOnNode1({'poster.jpg': good, 'thumbs/1.jpg': randomBytes(100)})
    })

    const bundle = async (entries: Array<{name: string; data: Buffer; type?: 'file' | 'directory'}>): Promise<Buffer> => {
      const pack = tar.pack()
      for (const entry of entries) pack.entry({name: entry.name, size: entry.data.length, type: entry.type ?? 'file'}, entry.data)
      pack.finalize()
      const chunks: Buffer[] = []
      for await (const chunk of pack) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks)
    }
    const post = (body: Buffer | string, signed = true) => {
      const target = `/internal/replicas/${uploadId}`
      const length = String(Buffer.byteLength(body))
      const to = {id: 'node2', incarnation: node2().cluster.cluster.registry.incarnation!}
      const headers = signed ? {'x-cluster-signature': signRequest(SECRET, 'node1', to, {method: 'POST', path: target, headers: {'content-length': length}})} : {}
      return request('POST', `${node2().url}${target}`, {headers: {...headers, 'content-type': 'application/x-tar', 'content-length': length}, body})
    }

    it('stores entries whose bytes match their row and rejects, without storing, those that do not', async () => {
      const res = await post(await bundle([{name: 'poster.jpg', data: good}, {name: 'thumbs/1.jpg', data: randomBytes(100)}]))
      assert.equal(res.status, 200)
      const answer = JSON.parse(res.body) as {stored: string[]; rejected: Array<{path: string; reason: string}>}
      assert.deepEqual(answer.stored, ['poster.jpg'])
      assert.deepEqual(answer.rejected.map((r) => r.path), ['thumbs/1.jpg'])
      assert.match(answer.rejected[0]!.reason, /xxh3-128/, 'checked by the wire hash in its row')
      await assert.rejects(stat(path.join(node2().dataDir, 'media', uploadId, 'thumbs', '1.jpg')))
      assert.deepEqual((await replicaRows(uploadId)).map((r) => `${r.path}@${r.node_id}`), ['poster.jpg@node2'])
    })

    it('refuses entries that are no artifact of the upload, or leave its directory, or are not files', async () => {
      const unknown = await post(await bundle([{name: 'other.jpg', data: good}]))
      assert.equal(unknown.status, 409)
      assert.match(unknown.body, /not an artifact/)
      const escape = await post(await bundle([{name: '../../uploads/x', data: good}]))
      assert.equal(escape.status, 400)
      assert.match(escape.body, /invalid artifact path/)
      const dir = await post(await bundle([{name: 'thumbs', data: Buffer.alloc(0), type: 'directory'}]))
      assert.equal(dir.status, 400)
      assert.match(dir.body, /not a file/)
    })

    it('refuses a body that is not a whole tar stream with 400', async () => {
      const whole = await bundle([{name: 'poster.jpg', data: good}])
      const truncated = await post(whole.subarray(0, 1200))
      assert.equal(truncated.status, 400)
      assert.match(truncated.body, /not a complete tar stream/)
      const garbage = await post('this is not a tar stream at all, just some text that goes on for a while. '.repeat(20))
      assert.equal(garbage.status, 400)
    })

    it('refuses an unsigned bundle with 401, and says so in its log', async () => {
      const res = await post(await bundle([{name: 'poster.jpg', data: good}]), false)
      assert.equal(res.status, 401)
      assert.ok(node2Log.some((line) => line.includes('refused an unauthenticated cluster request') && line.includes('no cluster signature')))
    })
  })
})
