/**
 * Long and silent requests (issue 14, points 3 and 4). A single PATCH that streams for longer
 * than UPLOAD_EXPIRY keeps its upload: its progress is recorded as it goes and the sweeper leaves
 * it alone; an upload that goes away under a request is never answered 2xx. A request body
 * that goes silent for UPLOAD_IDLE_TIMEOUT is ended: what reached the file is kept and recorded,
 * and the connection is closed. Short expiries and timeouts keep each case to a few seconds.
 */
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, rm, stat} from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, request, TUS} from '../support/http.js'
import {DATABASE_KINDS, freshSchema, startTestNode, type TestNode} from '../support/node.js'
import {freePort, spawnNode} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
const idOf = (url: string) => new URL(url).pathname.split('/').pop()!
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** A PATCH whose body the test feeds piece by piece. */
function streamingPatch(url: string, offset: number, length: number) {
  const req = http.request(url, {method: 'PATCH', headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset), 'Content-Length': String(length)}})
  const response = new Promise<{status: number; headers: http.IncomingHttpHeaders; body: string} | Error>((resolve) => {
    req.on('response', (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body}))
    })
    req.on('error', resolve)
  })
  return {
    write: (chunk: Buffer) =>
      new Promise<void>((resolve) => {
        if (req.destroyed || req.write(chunk)) return resolve()
        // Whichever comes first; the other listener goes too (one 'close' per backed-up write piled up).
        const done = () => {
          req.off('drain', done).off('close', done)
          resolve()
        }
        req.once('drain', done).once('close', done)
      }),
    end: () => req.end(),
    destroy: () => req.destroy(),
    response,
  }
}

/** Sends head and body bytes on a raw socket, then stays silent; what came back, and whether the server closed. */
function silentAfter(port: number, head: string, body: Buffer, hardMs: number): Promise<{received: string; closedByServer: boolean; ms: number}> {
  return new Promise((resolve) => {
    const started = Date.now()
    const socket = net.connect({port, host: '127.0.0.1'})
    let received = ''
    const finish = (closedByServer: boolean) => {
      clearTimeout(hard)
      socket.destroy()
      resolve({received, closedByServer, ms: Date.now() - started})
    }
    const hard = setTimeout(() => finish(false), hardMs)
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')))
    socket.on('end', () => finish(true))
    socket.on('close', () => finish(true))
    socket.on('error', () => finish(true))
    socket.once('connect', () => socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body])))
  })
}

const head = (method: string, target: string, headers: Record<string, string | number>) =>
  `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`

for (const kind of DATABASE_KINDS) {
  describe(`a request longer than the expiry (${kind} database)`, () => {
    let node: TestNode
    before(async () => {
      node = await startTestNode(kind, {uploadExpiry: '1s', expirySweepInterval: '100ms'})
    })
    after(() => node.stop())

    it('a single PATCH streaming for three expiry periods keeps its upload, records progress as it goes, and completes it', async () => {
      const data = randomBytes(32 * 16 * 1024)
      const url = await createUpload(node.url, data.length)
      const patch = streamingPatch(url, 0, data.length)
      let seenMidway = 0
      for (let i = 0; i < 32; i++) {
        await patch.write(data.subarray(i * 16384, (i + 1) * 16384))
        await pause(100)
        if (i === 24) {
          // Midway, well past the expiry counted from creation: alive, and its progress visible
          // (the status API).
          const status = (await (await fetch(`${node.url}/api/uploads/${idOf(url)}`)).json()) as {status: string; offset: number}
          assert.equal(status.status, 'uploading', 'during the long PATCH')
          seenMidway = status.offset
        }
      }
      patch.end()
      const res = await patch.response
      assert.ok(!(res instanceof Error), String(res))
      assert.equal(res.status, 204, res.body)
      assert.equal(res.headers['upload-offset'], String(data.length))
      assert.ok(seenMidway >= 16 * 16384, `a checkpoint recorded the offset midway (${seenMidway} bytes)`)
      const row = await node.uploads.findById(idOf(url))
      assert.equal(row?.status, 'completed')
      assert.equal(row?.sha256, sha256(data))
    })

    it('a HEAD during a PATCH answers at once with the offset so far and leaves the PATCH streaming to its end', async () => {
      const data = randomBytes(40 * 16 * 1024)
      const url = await createUpload(node.url, data.length)
      const patch = streamingPatch(url, 0, data.length)
      let headOffset = -1
      for (let i = 0; i < 40; i++) {
        await patch.write(data.subarray(i * 16384, (i + 1) * 16384))
        await pause(100)
        if (i === 5) {
          const started = Date.now()
          const head = await request('HEAD', url, {headers: TUS})
          assert.equal(head.status, 200)
          assert.ok(Date.now() - started < 1000, `the HEAD did not wait for the PATCH (${Date.now() - started} ms)`)
          headOffset = Number(head.headers['upload-offset'])
        }
      }
      patch.end()
      const res = await patch.response
      assert.ok(!(res instanceof Error), `the PATCH was not cut: ${String(res)}`)
      assert.equal(res.status, 204, res.body)
      assert.equal(res.headers['upload-offset'], String(data.length))
      assert.ok(headOffset > 0 && headOffset <= 6 * 16384, `the HEAD saw the bytes on disk so far (${headOffset})`)
      assert.equal((await node.uploads.findById(idOf(url)))?.sha256, sha256(data))
    })

    it('the sweep leaves an upload whose lock is held alone, even past its expiry', async () => {
      const url = await createUpload(node.url, 100)
      const id = idOf(url)
      const lock = node.locker.tryLock(id)!
      try {
        await pause(1200)
        await node.sweeper.sweep()
        assert.equal((await node.uploads.findById(id))?.status, 'uploading')
        assert.equal((await stat(path.join(node.dataDir, 'uploads', id))).size, 0)
      } finally {
        await lock.unlock()
      }
      // Twice: the first call may join a periodic pass that began before the release.
      await node.sweeper.sweep()
      await node.sweeper.sweep()
      assert.equal((await node.uploads.findById(id))?.status, 'expired', 'once released, it expires as usual')
    })

    it('a PATCH whose upload goes away while it streams answers 410 and completes nothing', async () => {
      const data = randomBytes(20 * 16384)
      const url = await createUpload(node.url, data.length)
      const id = idOf(url)
      const patch = streamingPatch(url, 0, data.length)
      await patch.write(data.subarray(0, 16384))
      await pause(150)
      // Whatever marks it gone (an operator, a node of another version): the request must notice.
      await node.uploads.markGone(id, 'expired')
      for (let i = 1; i < 20; i++) {
        await patch.write(data.subarray(i * 16384, (i + 1) * 16384))
        await pause(50)
      }
      patch.end()
      const res = await patch.response
      if (!(res instanceof Error)) {
        assert.equal(res.status, 410, `answered ${res.status} ${res.body}`)
        assert.match(res.body, /expired or was terminated while this request was sending it/)
      }
      const row = await node.uploads.findById(id)
      assert.equal(row?.status, 'expired')
      assert.equal(row?.sha256, null)
    })
  })
}

describe('a silent request body (postgres database)', () => {
  let node: TestNode
  let port: number
  before(async () => {
    node = await startTestNode('postgres', {uploadIdleTimeout: '1s', uploadExpiry: '1h'})
    port = Number(new URL(node.url).port)
  })
  after(() => node.stop())

  it('a PATCH that sends 10 bytes then nothing is answered 408, the connection closed, and the 10 bytes kept', async () => {
    const url = await createUpload(node.url, 100)
    const result = await silentAfter(port, head('PATCH', new URL(url).pathname, {...PATCH_HEADERS, 'Upload-Offset': 0, 'Content-Length': 100}), Buffer.from('0123456789'), 6000)
    assert.ok(result.closedByServer, `the connection was still open after ${result.ms} ms`)
    assert.match(result.received, /^HTTP\/1\.1 408 /)
    assert.match(result.received, /sent nothing for 1 second/)
    assert.ok(result.ms < 4000, `ended after ${result.ms} ms`)
    const headRes = await request('HEAD', url, {headers: TUS})
    assert.equal(headRes.headers['upload-offset'], '10')
    assert.equal((await node.uploads.findById(idOf(url)))?.bytesReceived, 10)
    // The upload carries on from there.
    const rest = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '10'}, body: Buffer.alloc(90, 1)})
    assert.equal(rest.status, 204)
  })

  it('a creation-with-upload POST that goes silent is answered 408 and keeps what it sent', async () => {
    const before = Date.now()
    const result = await silentAfter(
      port,
      head('POST', '/files/', {...TUS, 'Upload-Length': 100, 'Content-Type': 'application/offset+octet-stream', 'Content-Length': 100}),
      Buffer.from('abcdefghij'),
      6000
    )
    assert.ok(result.closedByServer, `the connection was still open after ${result.ms} ms`)
    assert.match(result.received, /^HTTP\/1\.1 408 /)
    const rows = (await node.uploads.list({limit: 10})).filter((r) => r.createdAt.getTime() >= before - 1000)
    assert.equal(rows.length, 1)
    assert.equal(rows[0]!.bytesReceived, 10)
    // The answer says where the upload is, and how much of it arrived: the client resumes it.
    const location = /\r\nlocation: *(\S+)/i.exec(result.received)?.[1]
    assert.ok(location?.endsWith(`/files/${rows[0]!.id}`), `408 carries the upload's Location (${location})`)
    assert.match(result.received, /\r\nupload-offset: *10\r\n/i)
    // (The raw request named no port in Host: the path is what matters.)
    const rest = await request('PATCH', new URL(new URL(location!).pathname, node.url).href, {headers: {...PATCH_HEADERS, 'Upload-Offset': '10'}, body: Buffer.alloc(90, 1)})
    assert.equal(rest.status, 204)
  })

  it('an IETF draft append that goes silent is answered 408 and keeps what it sent', async () => {
    const url = await createUpload(node.url, 100)
    const result = await silentAfter(
      port,
      head('PATCH', new URL(url).pathname, {'Upload-Draft-Interop-Version': 6, 'Upload-Offset': 0, 'Upload-Complete': '?1', 'Content-Type': 'application/partial-upload', 'Content-Length': 100}),
      Buffer.from('0123456789'),
      6000
    )
    assert.ok(result.closedByServer, `the connection was still open after ${result.ms} ms`)
    assert.match(result.received, /^HTTP\/1\.1 408 /)
    assert.equal((await request('HEAD', url, {headers: TUS})).headers['upload-offset'], '10')
  })

  it('a slow body that never pauses as long as the timeout is not cut', async () => {
    const data = randomBytes(6 * 1000)
    const url = await createUpload(node.url, data.length)
    const patch = streamingPatch(url, 0, data.length)
    for (let i = 0; i < 6; i++) {
      await patch.write(data.subarray(i * 1000, (i + 1) * 1000))
      await pause(500)
    }
    patch.end()
    const res = await patch.response
    assert.ok(!(res instanceof Error), String(res))
    assert.equal(res.status, 204, res.body)
    assert.equal((await node.uploads.findById(idOf(url)))?.status, 'completed')
  })
})

describe('a node killed in the middle of a long PATCH, after a checkpoint', () => {
  let dataDir: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'long-request-'))
    schema = await freshSchema()
  })
  after(async () => {
    await schema.drop()
    await rm(dataDir, {recursive: true, force: true})
  })

  it('resumes from a consistent offset with the right hashes', async () => {
    const env = {DATA_DIR: dataDir, DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema.schema, UPLOAD_EXPIRY: '20s'}
    const port = await freePort()
    let node = await spawnNode(env, port)
    const data = randomBytes(16 << 20)
    const url = await createUpload(node.url, data.length)
    const status = async () => (await (await fetch(`${node.url}/api/uploads/${idOf(url)}`)).json()) as {offset: number; status: string; sha256: string; md5: string}

    const patch = streamingPatch(url, 0, data.length)
    let sent = 0
    let checkpointed = 0
    // Stream until a checkpoint shows in the row mid-request (every 3 s; the expiry outlasts a restart).
    for (const deadline = Date.now() + 15_000; checkpointed === 0 && Date.now() < deadline; ) {
      await patch.write(data.subarray(sent, sent + 65536))
      sent += 65536
      await pause(50)
      checkpointed = (await status()).offset
    }
    assert.ok(checkpointed > 0, 'a checkpoint recorded progress while the PATCH was streaming')
    await patch.write(data.subarray(sent, sent + (512 << 10)))
    sent += 512 << 10
    await pause(200)
    await node.kill('SIGKILL')
    await patch.response

    node = await spawnNode(env, port)
    try {
      const headRes = await request('HEAD', url, {headers: TUS})
      assert.equal(headRes.status, 200)
      const offset = Number(headRes.headers['upload-offset'])
      assert.ok(offset >= checkpointed && offset <= sent, `resumes from ${offset} (checkpoint ${checkpointed}, sent ${sent})`)
      assert.equal((await status()).offset, offset, 'the row agrees with the file')
      const rest = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset)}, body: data.subarray(offset)})
      assert.equal(rest.status, 204, rest.body)
      const done = await status()
      assert.equal(done.status, 'completed')
      assert.equal(done.sha256, sha256(data))
      assert.equal(done.md5, createHash('md5').update(data).digest('hex'))
    } finally {
      await node.kill('SIGKILL')
    }
  })
})
