/**
 * tus checksum and checksum-trailer extensions, Expect: 100-continue, chunked bodies, and two
 * appends racing on one upload, over raw HTTP.
 */
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, request, TUS} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

const checksum = (algorithm: string, data: Buffer | string) => `${algorithm} ${createHash(algorithm).update(data).digest('base64')}`

/** A chunked PATCH whose body is sent in pieces and followed by trailers. */
function chunkedPatch(url: string, headers: Record<string, string>, pieces: Buffer[], trailers?: Record<string, string>): Promise<{status: number; headers: http.IncomingHttpHeaders; body: string}> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {method: 'PATCH', headers: {...headers, 'Transfer-Encoding': 'chunked'}}, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d))
      res.on('end', () => resolve({status: res.statusCode!, headers: res.headers, body}))
    })
    req.on('error', reject)
    for (const piece of pieces) req.write(piece)
    if (trailers) req.addTrailers(trailers)
    req.end()
  })
}

describe('tus checksum and transfer details', () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode('postgres')
  })
  after(() => node.stop())
  const fileOf = (url: string) => path.join(node.dataDir, 'uploads', new URL(url).pathname.split('/').pop()!)
  const offsetOf = async (url: string) => (await request('HEAD', url, {headers: TUS})).headers['upload-offset']

  it('advertises checksum, checksum-trailer and the algorithms in OPTIONS', async () => {
    const res = await request('OPTIONS', `${node.url}/files/`)
    const extensions = String(res.headers['tus-extension']).split(',')
    for (const e of ['checksum', 'checksum-trailer']) assert.ok(extensions.includes(e), e)
    assert.deepEqual(String(res.headers['tus-checksum-algorithm']).split(',').sort(), ['md5', 'sha1', 'sha256', 'sha512'])
  })

  it('accepts an append whose Upload-Checksum matches, for each algorithm', async () => {
    for (const algorithm of ['sha1', 'md5', 'sha256', 'sha512']) {
      const url = await createUpload(node.url, 10)
      const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0', 'Upload-Checksum': checksum(algorithm, 'hello')}, body: 'hello'})
      assert.equal(res.status, 204, algorithm)
      assert.equal(res.headers['upload-offset'], '5')
    }
  })

  it('answers 460 Checksum Mismatch and discards the bytes: offset and file as before', async () => {
    const url = await createUpload(node.url, 10)
    await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
    const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3', 'Upload-Checksum': checksum('sha256', 'something else')}, body: 'defg'})
    assert.equal(res.status, 460)
    assert.equal(res.statusText, 'Checksum Mismatch')
    assert.equal(await offsetOf(url), '3')
    assert.equal(await readFile(fileOf(url), 'utf8'), 'abc')
    // The upload goes on, and its whole-file hash ignores the discarded bytes.
    const ok = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3', 'Upload-Checksum': checksum('md5', 'defghij')}, body: 'defghij'})
    assert.equal(ok.status, 204)
    const row = await node.uploads.findById(new URL(url).pathname.split('/').pop()!)
    assert.equal(row?.sha256, createHash('sha256').update('abcdefghij').digest('hex'))
  })

  it('checks the checksum of the first bytes sent with the creation request', async () => {
    const bad = await request('POST', `${node.url}/files/`, {headers: {...PATCH_HEADERS, 'Upload-Length': '5', 'Upload-Checksum': checksum('sha1', 'nope!')}, body: 'hello'})
    assert.equal(bad.status, 460)
    const good = await request('POST', `${node.url}/files/`, {headers: {...PATCH_HEADERS, 'Upload-Length': '5', 'Upload-Checksum': checksum('sha1', 'hello')}, body: 'hello'})
    assert.equal(good.status, 201)
    assert.equal(good.headers['upload-offset'], '5')
  })

  it('answers 400 to an unsupported algorithm or a malformed Upload-Checksum, storing nothing', async () => {
    const url = await createUpload(node.url, 10)
    for (const value of ['crc32 AAAAAA==', 'sha1', 'sha1 not-base64!']) {
      const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0', 'Upload-Checksum': value}, body: 'x'})
      assert.equal(res.status, 400, value)
      assert.ok(res.body.length > 0)
    }
    assert.equal(await offsetOf(url), '0')
  })

  it('answers 460 to a digest of the wrong size for its algorithm, on PATCH, creation and trailer, keeping nothing', async () => {
    const url = await createUpload(node.url, 10)
    await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
    for (const value of ['sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA', `sha256 ${createHash('sha1').update('defg').digest('base64')}`]) {
      const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3', 'Upload-Checksum': value}, body: 'defg'})
      assert.equal(res.status, 460, value)
      assert.equal(res.statusText, 'Checksum Mismatch')
      assert.match(res.body, /digest/)
    }
    assert.equal(await offsetOf(url), '3')
    assert.equal(await readFile(fileOf(url), 'utf8'), 'abc')

    const before = (await node.uploads.list({limit: 1000})).length
    const created = await request('POST', `${node.url}/files/`, {headers: {...PATCH_HEADERS, 'Upload-Length': '5', 'Upload-Checksum': 'sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA'}, body: 'hello'})
    assert.equal(created.status, 460)
    assert.equal(created.headers.location, undefined)
    assert.equal((await node.uploads.list({limit: 1000})).length, before, 'no upload was created')

    const trailer = await chunkedPatch(url, {...PATCH_HEADERS, 'Upload-Offset': '3', Trailer: 'Upload-Checksum'}, [Buffer.from('defg')], {'Upload-Checksum': 'sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA'})
    assert.equal(trailer.status, 460)
    assert.equal(await offsetOf(url), '3')
    assert.equal(await readFile(fileOf(url), 'utf8'), 'abc')
    // The connection and the upload go on.
    const ok = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3', 'Upload-Checksum': checksum('sha1', 'defg')}, body: 'defg'})
    assert.equal(ok.status, 204)
  })

  it('keeps the connection usable after refusing a body it did not read (460 for a wrong-size digest, 415 on creation)', async () => {
    const url = new URL(await createUpload(node.url, 10))
    const socket = net.connect(Number(url.port), url.hostname)
    let received = ''
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')))
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    const body = 'x'.repeat(64 * 1024)
    const head = (method: string, target: string, headers: string) => `${method} ${target} HTTP/1.1\r\nHost: ${url.host}\r\nTus-Resumable: 1.0.0\r\n${headers}\r\n`
    socket.write(head('PATCH', url.pathname, `Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nUpload-Checksum: sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nContent-Length: ${body.length}\r\n`) + body)
    socket.write(head('POST', '/files/', `Upload-Length: 3\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n`) + 'abc')
    socket.write(head('HEAD', url.pathname, 'Connection: close\r\n'))
    await new Promise<void>((resolve) => socket.once('close', () => resolve()))
    assert.deepEqual([...received.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]), ['460', '415', '200'])
    assert.match(received, /Upload-Offset: 0/i)
  })

  it('verifies a checksum sent as a trailer of a chunked body (checksum-trailer)', async () => {
    const url = await createUpload(node.url, 12)
    const ok = await chunkedPatch(url, {...PATCH_HEADERS, 'Upload-Offset': '0', Trailer: 'Upload-Checksum'}, [Buffer.from('hello '), Buffer.from('world!')], {'Upload-Checksum': checksum('sha1', 'hello world!')})
    assert.equal(ok.status, 204)
    assert.equal(ok.headers['upload-offset'], '12')

    const other = await createUpload(node.url, 12)
    const bad = await chunkedPatch(other, {...PATCH_HEADERS, 'Upload-Offset': '0', Trailer: 'Upload-Checksum'}, [Buffer.from('hello world!')], {'Upload-Checksum': checksum('sha256', 'goodbye')})
    assert.equal(bad.status, 460)
    assert.equal(await offsetOf(other), '0')
    const missing = await chunkedPatch(other, {...PATCH_HEADERS, 'Upload-Offset': '0', Trailer: 'Upload-Checksum'}, [Buffer.from('hello world!')])
    assert.equal(missing.status, 400)
    assert.equal(await offsetOf(other), '0')
  })

  it('takes chunked bodies without Content-Length', async () => {
    const data = randomBytes(300_000)
    const url = await createUpload(node.url, data.length)
    const res = await chunkedPatch(url, {...PATCH_HEADERS, 'Upload-Offset': '0'}, [data.subarray(0, 100_000), data.subarray(100_000)])
    assert.equal(res.status, 204)
    assert.ok((await readFile(fileOf(url))).equals(data))
  })

  it('answers Expect: 100-continue with 100 Continue before the body is sent', async () => {
    const url = new URL(await createUpload(node.url, 5))
    const socket = net.connect(Number(url.port), url.hostname)
    let received = ''
    socket.on('data', (d) => (received += d.toString()))
    socket.write(`PATCH ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`)
    for (let i = 0; i < 50 && !received.includes('100 Continue'); i++) await new Promise((r) => setTimeout(r, 20))
    assert.match(received, /^HTTP\/1\.1 100 Continue\r\n/)
    socket.write('hello')
    for (let i = 0; i < 50 && !received.includes('204'); i++) await new Promise((r) => setTimeout(r, 20))
    socket.destroy()
    assert.match(received, /HTTP\/1\.1 204 No Content/)
    assert.match(received, /upload-offset: 5/i)
  })

  it('never corrupts an upload when two appends race for it', async () => {
    const size = 4 * 1024 * 1024
    const data = randomBytes(size)
    const url = await createUpload(node.url, size)
    const half = size / 2
    // Two clients both believe they are at offset 0.
    const [a, b] = await Promise.all([
      request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: data.subarray(0, half)}),
      request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: data.subarray(0, half)}),
    ])
    const statuses = [a.status, b.status].sort()
    assert.ok(statuses.every((s) => [204, 409, 400, 423].includes(s)), `statuses ${statuses}`)
    const offset = Number(await offsetOf(url))
    assert.ok(offset <= half)
    const rest = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset)}, body: data.subarray(offset)})
    assert.equal(rest.status, 204)
    assert.ok((await readFile(fileOf(url))).equals(data))
    const row = await node.uploads.findById(new URL(url).pathname.split('/').pop()!)
    assert.equal(row?.sha256, createHash('sha256').update(data).digest('hex'))
  })
})
