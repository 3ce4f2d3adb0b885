/**
 * GET /files/<id> against real processes: a two-node cluster on PostgreSQL, auth on. Downloads
 * of a completed upload (directly, through X-HTTP-Method-Override, forwarded by the node that
 * does not hold it) never take a node down, clients that hang up mid-download leave it up, any
 * file name works, and no descriptor leaks.
 */
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readdir, mkdtemp, rm} from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {SignJWT} from 'jose'
import {b64, PATCH_HEADERS, request, TUS} from '../support/http.js'
import {freshSchema} from '../support/node.js'
import {startProcessCluster, type ProcessCluster} from '../support/process-cluster.js'
import {spawnNode, type NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'

const SECRET = 'downloads-test-secret-0123456789-abcdefghij'
const CLUSTER = 'downloads-cluster-secret-0123456789-abcdefgh'
const token = (sub: string) => new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(new TextEncoder().encode(SECRET))

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {method, headers}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks)}))
      res.on('error', reject)
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer in 10 s: ${method} ${url}`)))
    req.on('error', reject)
    req.end()
  })
}

/** Starts a download and hangs up after its first bytes. */
function hangUpMidway(url: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {headers, agent: false}, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
      res.once('data', () => {
        req.destroy()
        resolve()
      })
    })
    req.on('error', () => resolve())
    req.end()
  })
}

const alive = (node: NodeProcess) => node.child.exitCode === null && node.child.signalCode === null
const descriptors = async (node: NodeProcess) => (await readdir(`/proc/${node.child.pid}/fd`)).length

describe('GET /files/<id> (downloads)', {timeout: 180_000}, () => {
  let root: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let nodes: NodeProcess[] = []
  let cluster: ProcessCluster<NodeProcess> | undefined
  let alice: Record<string, string>
  let bob: Record<string, string>

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'security-downloads-'))
    schema = await freshSchema()
    const env = {
      DATABASE_URL: TEST_DATABASE_URL,
      DATABASE_SCHEMA: schema.schema,
      CLUSTER_SECRET: CLUSTER,
      AUTH_JWT_SECRET: SECRET,
      NODE_HEARTBEAT_INTERVAL: '300ms',
      NODE_TTL: '3s',
    }
    cluster = await startProcessCluster({nodes: 2, dir: root, env})
    nodes = cluster.nodes
    alice = {Authorization: `Bearer ${await token('alice')}`}
    bob = {Authorization: `Bearer ${await token('bob')}`}
  })

  after(async () => {
    await cluster?.kill()
    await schema?.drop()
    if (root) await rm(root, {recursive: true, force: true})
  })

  /** A completed upload on the first node: its path and bytes. */
  async function completedUpload(bytes: Buffer, metadata: Record<string, string>): Promise<string> {
    const upload = Object.entries(metadata).map(([k, v]) => `${k} ${b64(v)}`).join(',')
    const created = await request('POST', `${nodes[0]!.url}/files/`, {headers: {...TUS, ...alice, 'Upload-Length': bytes.length, 'Upload-Metadata': upload}})
    assert.equal(created.status, 201, created.body)
    const location = new URL(String(created.headers.location)).pathname
    const patched = await request('PATCH', `${nodes[0]!.url}${location}`, {headers: {...PATCH_HEADERS, ...alice, 'Upload-Offset': 0}, body: bytes})
    assert.equal(patched.status, 204, patched.body)
    return location
  }

  it('serves 200 GETs of a completed upload, direct, through X-HTTP-Method-Override and forwarded, some cut short by the client, and every node stays up', async () => {
    const bytes = randomBytes(300 * 1024)
    const location = await completedUpload(bytes, {filename: 'clip.mp4', filetype: 'video/mp4'})
    const small = await completedUpload(randomBytes(1000), {filename: 'small.mp4', filetype: 'video/mp4'})
    for (let i = 0; i < 200; i++) {
      const node = nodes[i % 2]!
      // A client that hangs up once it has its first bytes is what brought @tus/server's GET down.
      if (i % 4 === 3) {
        await hangUpMidway(`${node.url}${i % 8 === 3 ? small : location}`, alice)
        continue
      }
      const res = i % 3 === 2 ? await get(`${node.url}${location}`, {...alice, ...TUS, 'X-HTTP-Method-Override': 'GET'}, 'POST') : await get(`${node.url}${location}`, alice)
      assert.equal(res.status, 200, `request ${i} (node ${(i % 2) + 1}): ${res.body.toString().slice(0, 200)}`)
      assert.ok(res.body.equals(bytes), `request ${i}: the bytes`)
    }
    assert.ok(alive(nodes[0]!) && alive(nodes[1]!), `a node exited:\n${nodes.map((n) => n.output()).join('\n')}`)
  })

  it('answers with the headers of a download: length, type, ETag, nosniff, Range, If-None-Match', async () => {
    const bytes = randomBytes(64 * 1024)
    const location = await completedUpload(bytes, {filename: 'clip.webm', filetype: 'video/webm'})
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    for (const node of nodes) {
      const whole = await get(`${node.url}${location}`, alice)
      assert.equal(whole.status, 200)
      assert.equal(whole.headers['content-length'], String(bytes.length))
      assert.equal(whole.headers['content-type'], 'video/webm')
      assert.equal(whole.headers['etag'], `"${sha256}"`)
      assert.equal(whole.headers['x-content-type-options'], 'nosniff')
      assert.equal(whole.headers['accept-ranges'], 'bytes')
      assert.equal(whole.headers['content-disposition'], 'inline; filename="clip.webm"')

      const part = await get(`${node.url}${location}`, {...alice, Range: 'bytes=100-199'})
      assert.equal(part.status, 206)
      assert.equal(part.headers['content-range'], `bytes 100-199/${bytes.length}`)
      assert.ok(part.body.equals(bytes.subarray(100, 200)))
      const suffix = await get(`${node.url}${location}`, {...alice, Range: 'bytes=-10'})
      assert.ok(suffix.status === 206 && suffix.body.equals(bytes.subarray(-10)))

      const beyond = await get(`${node.url}${location}`, {...alice, Range: `bytes=${bytes.length}-`})
      assert.equal(beyond.status, 416)
      assert.equal(beyond.headers['content-range'], `bytes */${bytes.length}`)
      const stale = await get(`${node.url}${location}`, {...alice, Range: 'bytes=0-9', 'If-Range': '"another"'})
      assert.equal(stale.status, 200, 'If-Range that does not match: the whole file')

      const cached = await get(`${node.url}${location}`, {...alice, 'If-None-Match': `"${sha256}"`})
      assert.equal(cached.status, 304)
      assert.equal(cached.body.length, 0)
    }
  })

  it('serves anything but a known video type as an opaque attachment', async () => {
    const location = await completedUpload(Buffer.from('<script>alert(1)</script>'), {filename: 'page.html', filetype: 'text/html'})
    const res = await get(`${nodes[0]!.url}${location}`, alice)
    assert.equal(res.status, 200)
    assert.equal(res.headers['content-type'], 'application/octet-stream')
    assert.equal(res.headers['content-disposition'], 'attachment; filename="page.html"')
    assert.equal(res.headers['x-content-type-options'], 'nosniff')
  })

  it('answers 409 for an upload still receiving, 404 for someone else or nobody, 410 once terminated', async () => {
    const created = await request('POST', `${nodes[0]!.url}/files/`, {headers: {...TUS, ...alice, 'Upload-Length': 10}})
    const location = new URL(String(created.headers.location)).pathname
    await request('PATCH', `${nodes[0]!.url}${location}`, {headers: {...PATCH_HEADERS, ...alice, 'Upload-Offset': 0}, body: 'abcd'})
    for (const node of nodes) {
      const unfinished = await get(`${node.url}${location}`, alice)
      assert.equal(unfinished.status, 409)
      assert.match(unfinished.body.toString(), /not complete \(4 of 10 bytes received\)/)
      assert.equal(unfinished.headers['upload-offset'], '4')
      assert.equal((await get(`${node.url}${location}`, bob)).status, 404)
      assert.equal((await get(`${node.url}/files/nope`, alice)).status, 404)
      assert.equal((await get(`${node.url}/files/`, alice)).status, 404)
    }
    assert.equal((await request('DELETE', `${nodes[1]!.url}${location}`, {headers: {...TUS, ...alice}})).status, 204)
    assert.equal((await get(`${nodes[0]!.url}${location}`, alice)).status, 410)
  })

  it('stays up, and lets go of its files, when clients hang up mid-download (direct and forwarded)', async () => {
    const location = await completedUpload(randomBytes(16 * 1024 * 1024), {filename: 'big.mp4', filetype: 'video/mp4'})
    await hangUpMidway(`${nodes[0]!.url}${location}`, alice)
    await hangUpMidway(`${nodes[1]!.url}${location}`, alice)
    await new Promise((r) => setTimeout(r, 500))
    const before = await Promise.all(nodes.map(descriptors))
    for (let i = 0; i < 40; i++) await hangUpMidway(`${nodes[i % 2]!.url}${location}`, alice)
    await new Promise((r) => setTimeout(r, 1000))
    const afterwards = await Promise.all(nodes.map(descriptors))
    assert.ok(alive(nodes[0]!) && alive(nodes[1]!), `a node exited:\n${nodes.map((n) => n.output()).join('\n')}`)
    for (const i of [0, 1]) assert.ok(afterwards[i]! - before[i]! <= 5, `node ${i + 1}: ${before[i]} descriptors before, ${afterwards[i]} after 40 cut downloads`)
    assert.equal((await get(`${nodes[1]!.url}${location}`, {...alice, Range: 'bytes=0-0'})).status, 206, 'and still serves')
  })

  it('serves a file named 视频.mp4, or with CR/LF in its metadata, 300 times without leaking a descriptor', async () => {
    const unicode = await completedUpload(Buffer.from('video bytes'), {filename: '视频 "final".mp4', filetype: 'video/mp4'})
    const crlf = await completedUpload(Buffer.from('more bytes'), {filename: 'a\r\nSet-Cookie: x=1\r\n.mov', filetype: 'application/x-evil\r\nX-Injected: 1'})
    const first = await get(`${nodes[0]!.url}${unicode}`, alice)
    assert.equal(first.status, 200, first.body.toString())
    assert.equal(first.headers['content-disposition'], `inline; filename="__ _final_.mp4"; filename*=UTF-8''%E8%A7%86%E9%A2%91%20%22final%22.mp4`)
    const second = await get(`${nodes[0]!.url}${crlf}`, alice)
    assert.equal(second.status, 200, second.body.toString())
    assert.equal(second.headers['set-cookie'], undefined)
    assert.equal(second.headers['x-injected'], undefined)
    assert.equal(second.headers['content-type'], 'application/octet-stream')
    assert.match(String(second.headers['content-disposition']), /^attachment; filename="aSet-Cookie: x=1.mov"$/)

    await new Promise((r) => setTimeout(r, 1000))
    const before = await descriptors(nodes[0]!)
    for (let i = 0; i < 300; i++) {
      const res = await get(`${nodes[0]!.url}${i % 2 ? unicode : crlf}`, alice)
      assert.equal(res.status, 200, `request ${i}`)
    }
    await new Promise((r) => setTimeout(r, 500))
    const afterwards = await descriptors(nodes[0]!)
    // Fewer is no leak: sockets of earlier tests may still be closing when the first count is taken.
    assert.ok(afterwards - before <= 5, `${before} descriptors before, ${afterwards} after 300 GETs`)
    assert.ok(alive(nodes[0]!))
  })
})

describe('GET /files/<id> on the embedded default, auth off', {timeout: 120_000}, () => {
  let root: string
  let node: NodeProcess

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'security-downloads-embedded-'))
    node = await spawnNode({DATA_DIR: root})
  })
  after(async () => {
    await node?.kill('SIGKILL')
    if (root) await rm(root, {recursive: true, force: true})
  })

  it('stays up through 200 GETs of small and larger uploads, a quarter of them cut short by the client', async () => {
    const locations: string[] = []
    for (const size of [10, 1000, 256 * 1024]) {
      const created = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': size, 'Upload-Metadata': `filename ${b64('clip.mp4')}`}})
      const location = new URL(String(created.headers.location)).pathname
      assert.equal((await request('PATCH', `${node.url}${location}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: randomBytes(size)})).status, 204)
      locations.push(location)
    }
    for (let i = 0; i < 200; i++) {
      const location = locations[i % 3]!
      if (i % 4 === 3) await hangUpMidway(`${node.url}${location}`, {})
      else assert.equal((await get(`${node.url}${location}`)).status, 200, `request ${i}`)
    }
    assert.ok(alive(node), `the node exited:\n${node.output()}`)
  })
})
