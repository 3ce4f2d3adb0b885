/**
 * Three nodes behind Debian's haproxy (deploy/haproxy.cfg), one PostgreSQL schema, each node
 * with its own data directory: uploads continue on any node, writes meet on the owner, an owner
 * that is down answers 503 and the upload resumes when it is back; artifacts reach every node,
 * signed, verified, and any node serves any of them; a late node catches up.
 */
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream} from 'node:fs'
import http from 'node:http'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import pg from 'pg'
import * as tus from 'tus-js-client'
import {signRequest} from '../src/cluster/cluster-signature.js'
import {placeArtifacts, sha256} from './support/artifacts.js'
import {referenceDigests, writeRandomFile} from './support/files.js'
import {startFlakyProxy, type FlakyProxy} from './support/flaky-proxy.js'
import {startHaproxy, type Haproxy} from './support/haproxy.js'
import {createUpload, PATCH_HEADERS, request, TUS} from './support/http.js'
import {freshSchema} from './support/node.js'
import {startProcessCluster, type ProcessCluster} from './support/process-cluster.js'
import {freePort, type NodeProcess} from './support/process-node.js'
import {TEST_DATABASE_URL} from './support/services.js'

const SECRET = 'cluster-test-secret-0123456789-abcdefghij'
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
const idOf = (url: string) => new URL(url).pathname.split('/').pop()!

async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await pause(200)
  }
}

describe('a cluster of three nodes behind haproxy', () => {
  let root: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let db: pg.Client
  let cluster: ProcessCluster<NodeProcess>
  let nodes: NodeProcess[] = []
  let lb: Haproxy
  let lbPort: number
  /** The public address: a network that cuts connections, in front of haproxy. */
  let flaky: FlakyProxy

  const sharedEnv = () => ({
    DATABASE_URL: TEST_DATABASE_URL,
    DATABASE_SCHEMA: schema.schema,
    CLUSTER_SECRET: SECRET,
    PUBLIC_URL: flaky.url,
    NODE_HEARTBEAT_INTERVAL: '300ms',
    NODE_TTL: '1500ms',
    REPLICATION_RECONCILE_INTERVAL: '500ms',
    SHUTDOWN_TIMEOUT: '2s',
  })

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'cluster-'))
    schema = await freshSchema()
    lbPort = await freePort()
    flaky = await startFlakyProxy(`http://127.0.0.1:${lbPort}`, 700 * 1024)
    cluster = await startProcessCluster({nodes: 3, dir: root, env: sharedEnv()})
    nodes = cluster.nodes
    lb = await startHaproxy(nodes.map((n) => n.url) as [string, string, string], lbPort)
    db = new pg.Client({connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema.schema}`})
    await db.connect()
    await eventually('haproxy to see every node healthy', async () => {
      const seen = new Set<string>()
      for (let i = 0; i < 6; i++) seen.add(String((await request('OPTIONS', `${lb.url}/files/`)).headers['x-request-id']))
      return seen.size === 6
    })
  })

  after(async () => {
    await flaky?.close()
    await lb?.stop()
    await cluster?.kill()
    await db?.end()
    await schema.drop()
    await rm(root, {recursive: true, force: true})
  })

  const ownerOf = async (id: string) => ((await db.query('SELECT node_id FROM uploads WHERE id = $1', [id])).rows[0] as {node_id: string}).node_id
  const nodeIndex = (nodeId: string) => Number(nodeId.replace('node', '')) - 1

  it('registers every node as live, with the URL its peers use', async () => {
    const {rows} = await db.query(`SELECT id, url FROM nodes ORDER BY id`)
    assert.deepEqual(rows.map((r: {id: string}) => r.id), ['node1', 'node2', 'node3'])
    assert.deepEqual(rows.map((r: {url: string}) => r.url), nodes.map((n) => n.url))
  })

  it('takes a tus-js-client upload through haproxy in small chunks, across nodes and cut connections, to the right sha256', async () => {
    const file = path.join(root, 'source.bin')
    const size = 3 * 1024 * 1024 + 99
    await writeRandomFile(file, size)
    {
      const url = await new Promise<string>((resolve, reject) => {
        const upload = new tus.Upload(createReadStream(file) as never, {
          endpoint: `${flaky.url}/files/`,
          uploadSize: size,
          chunkSize: 256 * 1024,
          retryDelays: Array(60).fill(100),
          onSuccess: () => resolve(upload.url!),
          onError: reject,
        })
        upload.start()
      })
      assert.ok(flaky.cuts > 0, 'connections were cut')
      assert.ok(url.startsWith(flaky.url), 'Location points at the public URL, not at a node')
      const id = idOf(url)
      const row = (await db.query('SELECT status, sha256, node_id FROM uploads WHERE id = $1', [id])).rows[0] as {status: string; sha256: string; node_id: string}
      assert.equal(row.status === 'completed' || row.status === 'processing' || row.status === 'ready' || row.status === 'failed', true)
      assert.equal(row.sha256, referenceDigests(file).sha256)
      // The bytes are on the owner only.
      const onOwner = await readFile(path.join(root, row.node_id, 'uploads', id))
      assert.equal(sha256(onOwner), referenceDigests(file).sha256)
    }
  })

  it('answers HEAD and takes PATCH for an upload on any node, exactly as the owner would', async () => {
    const url = await createUpload(nodes[0]!.url, 6)
    const id = idOf(url)
    assert.equal(await ownerOf(id), 'node1')
    const viaTwo = await request('PATCH', `${nodes[1]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
    assert.equal(viaTwo.status, 204)
    assert.equal(viaTwo.headers['upload-offset'], '3')
    const headViaThree = await request('HEAD', `${nodes[2]!.url}/files/${id}`, {headers: TUS})
    assert.equal(headViaThree.status, 200)
    assert.equal(headViaThree.headers['upload-offset'], '3')
    assert.equal(headViaThree.headers['upload-length'], '6')
    const conflict = await request('PATCH', `${nodes[2]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'zzz'})
    assert.equal(conflict.status, 409, "the owner's answer passes through")
    const done = await request('PATCH', `${nodes[2]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3', 'Upload-Checksum': `sha1 ${createHash('sha1').update('def').digest('base64')}`}, body: 'def'})
    assert.equal(done.status, 204)
    assert.equal(await readFile(path.join(root, 'node1', 'uploads', id), 'utf8'), 'abcdef')
  })

  it('never corrupts an upload when two PATCHes for it arrive at two nodes at once', async () => {
    const size = 2 * 1024 * 1024
    const data = randomBytes(size)
    const url = await createUpload(nodes[0]!.url, size)
    const id = idOf(url)
    const [a, b] = await Promise.all([
      request('PATCH', `${nodes[1]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: data.subarray(0, size / 2)}),
      request('PATCH', `${nodes[2]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: data.subarray(0, size / 2)}),
    ])
    assert.ok([a.status, b.status].every((s) => [204, 409, 400, 423].includes(s)), `${a.status} ${b.status}`)
    const offset = Number((await request('HEAD', `${nodes[1]!.url}/files/${id}`, {headers: TUS})).headers['upload-offset'])
    const rest = await request('PATCH', `${nodes[2]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset)}, body: data.subarray(offset)})
    assert.equal(rest.status, 204)
    assert.equal(sha256(await readFile(path.join(root, 'node1', 'uploads', id))), sha256(data))
    assert.equal(((await db.query('SELECT sha256 FROM uploads WHERE id = $1', [id])).rows[0] as {sha256: string}).sha256, sha256(data))
  })

  it('answers a HEAD right after a forwarded PATCH was cut with the offset the resume must send', async () => {
    // The client's connection to the forwarding node breaks; its HEAD reaches the owner at once,
    // maybe before the forwarder's word of the cut does: the resume at the offset it is told
    // must be taken, not answered 409 because the cut's bytes were kept just after.
    const size = 4 * 1024 * 1024
    const data = randomBytes(size)
    for (let round = 0; round < 6; round++) {
      const url = await createUpload(nodes[0]!.url, size)
      const id = idOf(url)
      await new Promise<void>((resolve) => {
        const req = http.request(`${nodes[1]!.url}/files/${id}`, {method: 'PATCH', headers: {...PATCH_HEADERS, 'Upload-Offset': '0', 'Content-Length': String(size)}})
        req.on('error', () => resolve())
        req.on('close', () => resolve())
        req.write(data.subarray(0, 1 << 20))
        setTimeout(() => req.destroy(), 150)
      })
      const head = await request('HEAD', `${nodes[0]!.url}/files/${id}`, {headers: TUS})
      const offset = Number(head.headers['upload-offset'])
      const rest = await request('PATCH', `${nodes[2]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset)}, body: data.subarray(offset)})
      assert.equal(rest.status, 204, `round ${round}: the HEAD answered ${offset}, the resume from there ${rest.status}`)
      assert.equal(sha256(await readFile(path.join(root, 'node1', 'uploads', id))), sha256(data))
    }
  })

  it('answers 503 with Retry-After while the owner is down, and resumes once it is back', async () => {
    const data = randomBytes(1024 * 1024)
    const url = await createUpload(nodes[2]!.url, data.length)
    const id = idOf(url)
    assert.equal((await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: data.subarray(0, 1000)})).status, 204)
    await nodes[2]!.kill('SIGKILL')
    await pause(2000) // past NODE_TTL: out of the live set
    const down = await request('HEAD', `${nodes[0]!.url}/files/${id}`, {headers: TUS})
    assert.equal(down.status, 503)
    assert.ok(Number(down.headers['retry-after']) > 0)
    const patchDown = await request('PATCH', `${nodes[1]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': '1000'}, body: data.subarray(1000)})
    assert.equal(patchDown.status, 503)

    await cluster.restart(2)
    await pause(500)
    const head = await request('HEAD', `${nodes[0]!.url}/files/${id}`, {headers: TUS})
    assert.equal(head.status, 200)
    assert.equal(head.headers['upload-offset'], '1000', 'nothing already received was lost')
    const rest = await request('PATCH', `${nodes[1]!.url}/files/${id}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': '1000'}, body: data.subarray(1000)})
    assert.equal(rest.status, 204)
    assert.equal(((await db.query('SELECT sha256 FROM uploads WHERE id = $1', [id])).rows[0] as {sha256: string}).sha256, sha256(data))
  })

  describe('artifacts', () => {
    let uploadId: string
    const files: Record<string, Buffer> = {'poster.jpg': randomBytes(5000), '720p/segment0.ts': randomBytes(300_000), '720p/index.m3u8': Buffer.from('#EXTM3U\n')}

    before(async () => {
      uploadId = idOf(await createUpload(nodes[0]!.url, 0))
      await placeArtifacts(db, {id: 'node1', dataDir: path.join(root, 'node1')}, uploadId, files)
    })

    it('replicates each artifact to every live peer, verified, and records where the copies are', async () => {
      await eventually('every artifact on every node', async () => {
        const {rows} = await db.query(`SELECT count(*)::int AS n FROM replicas r JOIN artifacts a ON a.id = r.artifact_id WHERE a.upload_id = $1 AND r.sha256 = a.sha256`, [uploadId])
        return (rows[0] as {n: number}).n === Object.keys(files).length * 2
      })
      for (const node of ['node2', 'node3']) {
        for (const [relative, data] of Object.entries(files)) {
          assert.equal(sha256(await readFile(path.join(root, node, 'media', uploadId, relative))), sha256(data), `${relative} on ${node}`)
        }
      }
    })

    it('serves every artifact from every node with the same sha256, Range included', async () => {
      for (const node of nodes) {
        for (const [relative, data] of Object.entries(files)) {
          const res = await fetch(`${node.url}/media/${uploadId}/${relative}`)
          assert.equal(res.status, 200, `${relative} from ${node.url}`)
          assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(data))
        }
        const range = await fetch(`${node.url}/media/${uploadId}/720p/segment0.ts`, {headers: {Range: 'bytes=100-199'}})
        assert.equal(range.status, 206)
        assert.ok(Buffer.from(await range.arrayBuffer()).equals(files['720p/segment0.ts']!.subarray(100, 200)))
      }
    })

    it('streams an artifact from a node that has it when this node has no copy, Range included', async () => {
      // node2 loses its copy of the segment (a disk replaced, say).
      await rm(path.join(root, 'node2', 'media', uploadId, '720p', 'segment0.ts'))
      await db.query(`DELETE FROM replicas WHERE node_id = 'node2'`)
      const res = await fetch(`${nodes[1]!.url}/media/${uploadId}/720p/segment0.ts`, {headers: {Range: 'bytes=10-19'}})
      assert.equal(res.status, 206)
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(files['720p/segment0.ts']!.subarray(10, 20)))
    })

    it('refuses unsigned, wrongly signed or tampered replication requests', async () => {
      const target = `/internal/replicas/${uploadId}/poster.jpg`
      const headers = {'x-artifact-sha256': sha256(files['poster.jpg']!), 'x-artifact-size': String(files['poster.jpg']!.length), 'upload-offset': '0'}
      const unsigned = await request('PUT', `${nodes[1]!.url}${target}`, {headers, body: files['poster.jpg']})
      assert.equal(unsigned.status, 401)
      const {rows} = await db.query(`SELECT started_at FROM nodes WHERE id = 'node2'`)
      const to = {id: 'node2', incarnation: new Date((rows[0] as {started_at: Date}).started_at).getTime()}
      const wrongSecret = await request('PUT', `${nodes[1]!.url}${target}`, {
        headers: {...headers, 'x-cluster-signature': signRequest('another-secret-0123456789-abcdefghijklmn', 'node1', to, {method: 'PUT', path: target, headers})},
        body: files['poster.jpg'],
      })
      assert.equal(wrongSecret.status, 401)
      const signature = signRequest(SECRET, 'node1', to, {method: 'PUT', path: target, headers})
      const tampered = await request('PUT', `${nodes[1]!.url}${target}`, {headers: {...headers, 'upload-offset': '5', 'x-cluster-signature': signature}, body: files['poster.jpg']!.subarray(5)})
      assert.equal(tampered.status, 401)
      const content = await request('GET', `${nodes[0]!.url}/internal/uploads/${uploadId}/content`)
      assert.equal(content.status, 401)
    })

    it('catches up a node that joins late', async () => {
      await cluster.add()
      await eventually('node4 to hold every artifact', async () => {
        for (const [relative, data] of Object.entries(files)) {
          const copy = await readFile(path.join(root, 'node4', 'media', uploadId, relative)).catch(() => undefined)
          if (!copy || sha256(copy) !== sha256(data)) return false
        }
        return true
      })
    })
  })
})
