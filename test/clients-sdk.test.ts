/**
 * The clients' view: tus-js-client options apps use, and raw replays of exactly what the
 * mobile SDKs send — tus-java-client (Android: POST + X-HTTP-Method-Override, Expect:
 * 100-continue, chunked bodies) and TUSKit (iOS: `TUS-Resumable`, `Upload-Extension`,
 * metadata pairs separated by ", ", and a HEAD that must carry both Upload-Length and
 * Upload-Offset). Shared behaviour (creation, offsets, checksums) is in test/tus-*.test.ts.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {after, before, describe, it} from 'node:test'
import * as tus from 'tus-js-client'
import {referenceDigests, writeRandomFile} from './support/files.js'
import {request} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const b64 = (s: string) => Buffer.from(s).toString('base64')
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** Sends one raw HTTP/1.1 request on a socket and returns everything the server answered. */
async function raw(base: string, head: string, body: Buffer[] = [], waitFor100 = false): Promise<string> {
  const {hostname, port} = new URL(base)
  const socket = net.connect(Number(port), hostname)
  let received = ''
  socket.on('data', (d) => (received += d.toString('latin1')))
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.write(head.replace(/\n/g, '\r\n') + '\r\n')
  if (waitFor100) {
    for (let i = 0; i < 100 && !received.includes('100 Continue'); i++) await new Promise((r) => setTimeout(r, 20))
    assert.match(received, /^HTTP\/1\.1 100 Continue\r\n\r\n/, 'the server asks for the body before the client sends it')
  }
  for (const chunk of body) socket.write(chunk)
  for (let i = 0; i < 250 && !/\r\n\r\n[\s\S]*HTTP\/1\.1 [2-5]\d\d|^HTTP\/1\.1 [2-5]\d\d/.test(received); i++) await new Promise((r) => setTimeout(r, 20))
  socket.end()
  await Promise.race([ended, new Promise((r) => setTimeout(r, 500))])
  socket.destroy()
  return received
}

/** A chunked body as HttpURLConnection's setChunkedStreamingMode sends it. */
const chunked = (pieces: Buffer[]) => [...pieces.flatMap((p) => [Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]), Buffer.from('0\r\n\r\n')]

describe('mobile and JavaScript clients', () => {
  let node: TestNode
  let dir: string
  before(async () => {
    node = await startTestNode('postgres')
    dir = await mkdtemp(path.join(os.tmpdir(), 'clients-'))
  })
  after(async () => {
    await node.stop()
    await rm(dir, {recursive: true, force: true})
  })
  const host = () => new URL(node.url).host
  const idOf = (location: string) => /Location: \S*\/files\/([a-z0-9]+)/i.exec(location)?.[1]

  it('TUSKit (iOS): creation with its headers, HEAD with length and offset, PATCHes with Content-Length', async () => {
    const data = randomBytes(600_000)
    const created = await raw(node.url, `POST /files/ HTTP/1.1\nHost: ${host()}\nTUS-Resumable: 1.0.0\nUpload-Extension: creation\nUpload-Length: ${data.length}\nUpload-Metadata: fileName ${b64('IMG_0042.MOV')}, filetype ${b64('video/quicktime')}\nContent-Length: 0\n`)
    assert.match(created, /^HTTP\/1\.1 201 Created/)
    const id = idOf(created)!
    const row = await node.uploads.findById(id)
    assert.equal(row?.filename, 'IMG_0042.MOV')
    assert.equal(row?.filetype, 'video/quicktime')

    const first = await raw(node.url, `PATCH /files/${id} HTTP/1.1\nHost: ${host()}\nTUS-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: 0\nContent-Length: 300000\n`, [data.subarray(0, 300_000)])
    assert.match(first, /^HTTP\/1\.1 204/)
    assert.match(first, /upload-offset: 300000/i)
    const status = await raw(node.url, `HEAD /files/${id} HTTP/1.1\nHost: ${host()}\nTUS-Resumable: 1.0.0\n`)
    assert.match(status, /upload-length: 600000/i, 'TUSKit fails a status check without Upload-Length')
    assert.match(status, /upload-offset: 300000/i)
    const rest = await raw(node.url, `PATCH /files/${id} HTTP/1.1\nHost: ${host()}\nTUS-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: 300000\nContent-Length: 300000\n`, [data.subarray(300_000)])
    assert.match(rest, /upload-offset: 600000/i)
    assert.equal((await node.uploads.findById(id))?.sha256, sha256(data))
  })

  it('tus-java-client on Android: POST with X-HTTP-Method-Override: PATCH, Expect: 100-continue, a chunked body, then a resume', async () => {
    const data = randomBytes(700_000)
    const created = await raw(node.url, `POST /files HTTP/1.1\nHost: ${host()}\nUser-Agent: Dalvik/2.1.0 (Linux; U; Android 14)\nTus-Resumable: 1.0.0\nUpload-Length: ${data.length}\nUpload-Metadata: filename ${b64('VID_2026.mp4')}\nContent-Length: 0\n`)
    assert.match(created, /^HTTP\/1\.1 201/)
    const id = idOf(created)!
    const patchHead = (offset: number) =>
      `POST /files/${id} HTTP/1.1\nHost: ${host()}\nUser-Agent: Dalvik/2.1.0 (Linux; U; Android 14)\nTus-Resumable: 1.0.0\nUpload-Offset: ${offset}\nContent-Type: application/offset+octet-stream\nExpect: 100-continue\nX-HTTP-Method-Override: PATCH\nTransfer-Encoding: chunked\n`
    // A request payload cut short: the phone lost its connection after 400 000 bytes.
    const cut = await raw(node.url, patchHead(0), [Buffer.from('61a80\r\n'), data.subarray(0, 400_000), Buffer.from('\r\n')], true)
    assert.doesNotMatch(cut, /HTTP\/1\.1 5\d\d/)
    // The app resumes: HEAD, then the rest from the server's offset.
    const head = await raw(node.url, `HEAD /files/${id} HTTP/1.1\nHost: ${host()}\nTus-Resumable: 1.0.0\n`)
    const offset = Number(/upload-offset: (\d+)/i.exec(head)![1])
    assert.ok(offset > 0 && offset <= 400_000, `resumes at ${offset}`)
    const rest = await raw(node.url, patchHead(offset), chunked([data.subarray(offset, offset + 100_000), data.subarray(offset + 100_000)]), true)
    assert.match(rest, /HTTP\/1\.1 204/)
    assert.match(rest, new RegExp(`upload-offset: ${data.length}`, 'i'))
    assert.equal((await node.uploads.findById(id))?.sha256, sha256(data))
  })

  it('tus-js-client with overridePatchMethod sends no PATCH at all, and the upload completes', async () => {
    const methods: string[] = []
    // A recording proxy: what the server actually received.
    const proxy = http.createServer((req, res) => {
      methods.push(req.method!)
      const upstream = http.request(new URL(req.url!, node.url), {method: req.method, headers: req.headers}, (up) => {
        res.writeHead(up.statusCode!, up.headers)
        up.pipe(res)
      })
      req.pipe(upstream)
    })
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()))
    const base = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`
    try {
      const file = path.join(dir, 'override.bin')
      await writeRandomFile(file, 1_500_000)
      const url = await new Promise<string>((resolve, reject) => {
        const upload = new tus.Upload(createReadStream(file) as never, {
          endpoint: `${base}/files/`,
          uploadSize: 1_500_000,
          chunkSize: 400_000,
          overridePatchMethod: true,
          onSuccess: () => resolve(upload.url!),
          onError: reject,
        })
        upload.start()
      })
      assert.ok(!methods.includes('PATCH'), methods.join())
      assert.ok(methods.filter((m) => m === 'POST').length >= 5, 'creation plus four appends as POST')
      const id = new URL(url).pathname.split('/').pop()!
      assert.equal((await node.uploads.findById(id))?.sha256, referenceDigests(file).sha256)
    } finally {
      proxy.close()
    }
  })

  it('tus-js-client resumes from its stored URL after the app process was killed', async () => {
    const file = path.join(dir, 'app.bin')
    const size = 3 * 1024 * 1024
    await writeRandomFile(file, size)
    const store = path.join(dir, 'tus-urls.json')
    await writeFile(store, '{}')
    const run = (stopAfter?: number) =>
      new Promise<{lines: Array<Record<string, unknown>>; code: number | null; signal: string | null}>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'support/tus-js-child.ts'), `${node.url}/files/`, file, store, ...(stopAfter ? [String(stopAfter)] : [])], {stdio: ['ignore', 'pipe', 'inherit']})
        let out = ''
        child.stdout!.on('data', (d) => (out += d))
        child.on('exit', (code, signal) => resolve({lines: out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>), code, signal}))
      })
    const first = await run(1024 * 1024)
    assert.equal(first.signal, 'SIGKILL', 'the first process died mid-upload')
    assert.ok(first.lines.some((l) => typeof l.progress === 'number'))
    assert.ok(!first.lines.some((l) => l.done))

    const second = await run()
    assert.equal(second.code, 0)
    const resumed = second.lines.find((l) => l.resumedFrom)
    assert.ok(resumed, 'the second process found the stored URL')
    const done = String(second.lines.find((l) => l.done)!.done)
    assert.equal(done, resumed!.resumedFrom)
    const firstProgress = second.lines.find((l) => typeof l.progress === 'number')!.progress as number
    assert.ok(firstProgress >= 1024 * 1024, `resumed from ${firstProgress}, not from 0`)
    const id = new URL(done).pathname.split('/').pop()!
    const row = await node.uploads.findById(id)
    assert.equal(row?.sha256, referenceDigests(file).sha256)
    assert.equal(row?.filename, 'phone-video.mp4')
    assert.equal(JSON.parse(await readFile(store, 'utf8')) !== null, true)
  })
})
