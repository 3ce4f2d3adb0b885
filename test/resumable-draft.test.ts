/**
 * The IETF resumable-upload draft on /files, rule by rule, over raw HTTP: exactly what Apple's
 * URLSession sends (interop 3) and what later interop versions send, against a real node. Each
 * upload must end as the same row and the same single outbox event as a tus upload.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {OutboxEventEntity} from '../src/db/entities/outbox-event.js'
import {referenceDigests} from './support/files.js'
import {request, TUS} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

type Version = 3 | 4 | 5 | 6 | 7 | 8
const VERSIONS: Version[] = [3, 5, 6, 8]

/** The completeness field as a client of this version writes it. */
function completeness(version: Version, complete: boolean): Record<string, string> {
  return version === 3 ? {'Upload-Incomplete': complete ? '?0' : '?1'} : {'Upload-Complete': complete ? '?1' : '?0'}
}
function readCompleteness(version: Version, headers: Record<string, string | string[] | undefined>): boolean | undefined {
  const value = version === 3 ? headers['upload-incomplete'] : headers['upload-complete']
  if (value === undefined) return undefined
  return version === 3 ? value === '?0' : value === '?1'
}
const appendType = (version: Version) => (version >= 6 ? {'Content-Type': 'application/partial-upload'} : {})

interface RawResponse {
  status: number
  reason: string
  headers: Record<string, string>
  body: string
}

/** Parses every response in `bytes` (interim ones first), as a client sees them. */
function parseResponses(bytes: Buffer): RawResponse[] {
  const out: RawResponse[] = []
  let rest = bytes
  for (;;) {
    const end = rest.indexOf('\r\n\r\n')
    if (end < 0) return out
    const [statusLine, ...lines] = rest.subarray(0, end).toString('latin1').split('\r\n')
    const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine!)
    assert.ok(match, `not a status line: ${JSON.stringify(statusLine)}`)
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }
    const length = Number(match[1]) < 200 ? 0 : Number(headers['content-length'] ?? 0)
    out.push({status: Number(match[1]), reason: match[2]!, headers, body: rest.subarray(end + 4, end + 4 + length).toString('utf8')})
    rest = rest.subarray(end + 4 + length)
  }
}

/**
 * Sends a request head and body on a raw socket. With `cutAfter`, sends that many body bytes,
 * waits for the 104, then drops the connection (a phone going into a tunnel).
 */
async function raw(url: string, head: string, body: Buffer, options: {cutAfter?: number; httpVersion?: string} = {}): Promise<RawResponse[]> {
  const {hostname, port} = new URL(url)
  const socket = net.connect(Number(port), hostname)
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.write(head.replace('HTTP/1.1', options.httpVersion ?? 'HTTP/1.1'))
  if (options.cutAfter !== undefined) {
    socket.write(body.subarray(0, options.cutAfter))
    const deadline = Date.now() + 5000
    while (!Buffer.concat(chunks).includes('\r\n\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    // Give the server a moment to store what it received before the connection dies.
    await new Promise((r) => setTimeout(r, 200))
    socket.destroy()
    return parseResponses(Buffer.concat(chunks))
  }
  // No half-close: a real client keeps its side open until the answer (Connection: close ends it).
  socket.write(body)
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return parseResponses(Buffer.concat(chunks))
}

/** Sends a request head, then the body in `pieces` with a pause between them (a long upload); every response. */
async function slowRaw(url: string, head: string, pieces: Buffer[], gapMs: number): Promise<RawResponse[]> {
  const {hostname, port} = new URL(url)
  const socket = net.connect(Number(port), hostname)
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.write(head)
  for (const piece of pieces) {
    await new Promise((r) => setTimeout(r, gapMs))
    socket.write(piece)
  }
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return parseResponses(Buffer.concat(chunks))
}

function requestHead(method: string, url: string, headers: Record<string, string | number>): string {
  const {host, pathname} = new URL(url)
  return `${method} ${pathname} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
}

describe('IETF resumable uploads draft (embedded database)', () => {
  let node: TestNode
  let dir: string
  before(async () => {
    node = await startTestNode('embedded', {maxUploadSize: '8MiB', uploadExpiry: '1h'})
    dir = await mkdtemp(path.join(os.tmpdir(), 'draft-'))
  })
  after(async () => {
    await node.stop()
    await rm(dir, {recursive: true, force: true})
  })

  const idOf = (location: string) => new URL(location, node.url).pathname.split('/').pop()!
  const eventsFor = (id: string) => node.db.getRepository(OutboxEventEntity).findBy({uploadId: id, topic: 'upload.completed'})

  async function assertCompleted(id: string, content: Buffer): Promise<void> {
    const file = path.join(dir, `${id}.expected`)
    await writeFile(file, content)
    const row = await node.uploads.findById(id)
    assert.equal(row?.status, 'completed')
    assert.equal(row?.size, content.length)
    assert.equal(row?.sha256, referenceDigests(file).sha256)
    assert.ok((await readFile(path.join(node.dataDir, 'uploads', id))).equals(content))
    assert.equal((await eventsFor(id)).length, 1, 'exactly one upload.completed event')
  }

  for (const version of VERSIONS) {
    const v = {'Upload-Draft-Interop-Version': String(version)}

    describe(`interop version ${version}`, () => {
      it('creates an upload from a request with the whole body, announces it in a 104 first, and completes it', async () => {
        const content = randomBytes(300_000)
        const responses = await raw(
          `${node.url}/files/`,
          requestHead('POST', `${node.url}/files/`, {...v, ...completeness(version, true), 'Content-Length': content.length, 'Content-Type': 'video/mp4'}),
          content
        )
        assert.deepEqual(responses.map((r) => r.status), [104, 201])
        const [interim, final] = responses as [RawResponse, RawResponse]
        assert.equal(interim.reason, 'Upload Resumption Supported')
        assert.equal(interim.headers['upload-draft-interop-version'], String(version))
        assert.ok(interim.headers.location)
        assert.equal(final.headers.location, interim.headers.location, 'the same Location in interim and final responses')
        assert.equal(final.headers['upload-offset'], String(content.length))
        assert.equal(readCompleteness(version, final.headers), true)
        const id = idOf(final.headers.location!)
        await assertCompleted(id, content)
        assert.equal((await node.uploads.findById(id))?.filetype, 'video/mp4')
      })

      it('resumes an interrupted creation: offset retrieval with HEAD, then an append of the rest', async () => {
        const content = randomBytes(512 * 1024)
        const [interim] = await raw(
          `${node.url}/files/`,
          requestHead('POST', `${node.url}/files/`, {...v, ...completeness(version, true), 'Content-Length': content.length}),
          content,
          {cutAfter: 200_000}
        )
        assert.equal(interim?.status, 104)
        const location = new URL(interim!.headers.location!, node.url).toString()

        const head = await request('HEAD', location, {headers: v})
        assert.equal(head.status, 204)
        assert.equal(head.headers['cache-control'], 'no-store')
        assert.equal(readCompleteness(version, head.headers), false)
        const offset = Number(head.headers['upload-offset'])
        assert.ok(offset > 0 && offset <= 200_000, `offset ${offset}`)

        const patch = await request('PATCH', location, {
          headers: {...v, ...appendType(version), ...completeness(version, true), 'Upload-Offset': offset},
          body: content.subarray(offset),
        })
        assert.equal(patch.status, 204, patch.body)
        assert.equal(readCompleteness(version, patch.headers), true)
        assert.equal(patch.headers['upload-offset'], String(content.length))
        await assertCompleted(idOf(location), content)

        const after = await request('HEAD', location, {headers: v})
        assert.equal(readCompleteness(version, after.headers), true)
        assert.equal(after.headers['upload-offset'], String(content.length))
      })

      it('creates an incomplete upload with 201 and Location, and completes it over several appends of unknown total length', async () => {
        const content = randomBytes(100_000)
        const create = await request('POST', `${node.url}/files/`, {headers: {...v, ...completeness(version, false)}, body: content.subarray(0, 10_000)})
        assert.equal(create.status, 201, create.body)
        assert.ok(create.headers.location)
        assert.equal(readCompleteness(version, create.headers), false)
        assert.equal(create.headers['upload-offset'], '10000')
        const location = new URL(create.headers.location, node.url).toString()

        const middle = await request('PATCH', location, {headers: {...v, ...appendType(version), ...completeness(version, false), 'Upload-Offset': 10_000}, body: content.subarray(10_000, 60_000)})
        assert.equal(middle.status, 204, middle.body)
        assert.equal(readCompleteness(version, middle.headers), false)
        assert.equal((await node.uploads.findById(idOf(location)))?.size, null, 'the length is still unknown')

        const last = await request('PATCH', location, {headers: {...v, ...appendType(version), ...completeness(version, true), 'Upload-Offset': 60_000}, body: content.subarray(60_000)})
        assert.equal(last.status, 204, last.body)
        await assertCompleted(idOf(location), content)
      })

      it('answers an append at the wrong offset with 409 and the right Upload-Offset, changing nothing', async () => {
        const create = await request('POST', `${node.url}/files/`, {headers: {...v, ...completeness(version, false), 'Upload-Length': 10}, body: 'hello'})
        const location = new URL(create.headers.location!, node.url).toString()
        const res = await request('PATCH', location, {headers: {...v, ...appendType(version), ...completeness(version, true), 'Upload-Offset': 3}, body: 'lo world'})
        assert.equal(res.status, 409)
        assert.equal(res.headers['upload-offset'], '5')
        if (version >= 6) {
          assert.equal(res.headers['content-type'], 'application/problem+json')
          const problem = JSON.parse(res.body) as Record<string, unknown>
          assert.equal(problem.type, 'https://iana.org/assignments/http-problem-types#mismatching-upload-offset')
          assert.equal(problem['expected-offset'], 5)
          assert.equal(problem['provided-offset'], 3)
        } else {
          assert.match(res.headers['content-type'] ?? '', /^text\/plain/)
        }
        assert.equal((await node.uploads.findById(idOf(location)))?.bytesReceived, 5)
      })

      it('refuses to append to a completed upload with 400 and leaves it as it was', async () => {
        const create = await request('POST', `${node.url}/files/`, {headers: {...v, ...completeness(version, true)}, body: 'done'})
        assert.equal(create.status, 201)
        const location = new URL(create.headers.location!, node.url).toString()
        const res = await request('PATCH', location, {headers: {...v, ...appendType(version), ...completeness(version, true), 'Upload-Offset': 4}, body: 'more'})
        assert.equal(res.status, 400)
        if (version >= 6) assert.equal(res.headers['content-type'], 'application/problem+json')
        await assertCompleted(idOf(location), Buffer.from('done'))
      })

      it('cancels an upload with DELETE: 204, then the URL no longer answers as an upload', async () => {
        const create = await request('POST', `${node.url}/files/`, {headers: {...v, ...completeness(version, false)}, body: 'partial'})
        const location = new URL(create.headers.location!, node.url).toString()
        const res = await request('DELETE', location, {headers: v})
        assert.equal(res.status, 204)
        assert.equal((await node.uploads.findById(idOf(location)))?.status, 'terminated')
        const head = await request('HEAD', location, {headers: v})
        assert.ok(head.status === 404 || head.status === 410, `HEAD after cancel: ${head.status}`)
        assert.equal((await eventsFor(idOf(location))).length, 0)
      })

      it('refuses content past the upload length, keeping the offset within it', async () => {
        const create = await request('POST', `${node.url}/files/`, {headers: {...v, ...completeness(version, false), 'Upload-Length': 4}, body: ''})
        const location = new URL(create.headers.location!, node.url).toString()
        const res = await request('PATCH', location, {headers: {...v, ...appendType(version), ...completeness(version, true), 'Upload-Offset': 0}, body: 'too long'})
        assert.equal(res.status, 400)
        assert.equal((await node.uploads.findById(idOf(location)))?.bytesReceived, 0)
      })

      it('refuses an upload larger than the node accepts with 413 before storing anything', async () => {
        const res = await request('POST', `${node.url}/files/`, {headers: {...v, ...completeness(version, false), 'Upload-Length': 64 * 1024 * 1024}, body: ''})
        assert.equal(res.status, 413)
        if (version >= 6) assert.match(String(res.headers['upload-limit']), /max-size=8388608/)
      })
    })
  }

  describe('rules specific to some versions', () => {
    it('interop 3: an append without Upload-Incomplete completes the upload (URLSession sends none on the last part)', async () => {
      const v = {'Upload-Draft-Interop-Version': '3'}
      const create = await request('POST', `${node.url}/files/`, {headers: {...v, 'Upload-Incomplete': '?1'}, body: 'abc'})
      const location = new URL(create.headers.location!, node.url).toString()
      const res = await request('PATCH', location, {headers: {...v, 'Upload-Offset': 3}, body: 'def'})
      assert.equal(res.status, 204)
      await assertCompleted(idOf(location), Buffer.from('abcdef'))
    })

    it('interop 6 and later: an append must be application/partial-upload (415 otherwise)', async () => {
      const v = {'Upload-Draft-Interop-Version': '6'}
      const create = await request('POST', `${node.url}/files/`, {headers: {...v, 'Upload-Complete': '?0'}, body: ''})
      const location = new URL(create.headers.location!, node.url).toString()
      const res = await request('PATCH', location, {headers: {...v, 'Upload-Complete': '?1', 'Upload-Offset': 0, 'Content-Type': 'application/offset+octet-stream'}, body: 'x'})
      assert.equal(res.status, 415)
      assert.equal(res.headers['accept-patch'], 'application/partial-upload')
    })

    it('interop 5 and later: an append without Upload-Complete is refused with 400', async () => {
      const v = {'Upload-Draft-Interop-Version': '5'}
      const create = await request('POST', `${node.url}/files/`, {headers: {...v, 'Upload-Complete': '?0'}, body: ''})
      const location = new URL(create.headers.location!, node.url).toString()
      const res = await request('PATCH', location, {headers: {...v, 'Upload-Offset': 0}, body: 'x'})
      assert.equal(res.status, 400)
    })

    it('a creation request without the completeness field is refused with 400 and creates nothing', async () => {
      const before = (await node.uploads.list({limit: 1000})).length
      const res = await request('POST', `${node.url}/files/`, {headers: {'Upload-Draft-Interop-Version': '6'}, body: 'x'})
      assert.equal(res.status, 400)
      assert.equal((await node.uploads.list({limit: 1000})).length, before)
    })

    it('interop 7 and 8: a long append or creation answers 104s about once a second with the growing offset on disk; before 7, none', async () => {
      const pieces = Array.from({length: 12}, (_, i) => Buffer.alloc(8192, 97 + i))
      const total = pieces.length * 8192
      const appendFor = async (version: number) => {
        const v = {'Upload-Draft-Interop-Version': String(version)}
        const create = await request('POST', `${node.url}/files/`, {headers: {...v, 'Upload-Complete': '?0'}, body: ''})
        const location = new URL(create.headers.location!, node.url).toString()
        const head = requestHead('PATCH', location, {...v, 'Upload-Complete': '?1', 'Upload-Offset': 0, 'Content-Type': 'application/partial-upload', 'Content-Length': total})
        return slowRaw(location, head, pieces, 300)
      }
      const creation = slowRaw(`${node.url}/files/`, requestHead('POST', `${node.url}/files/`, {'Upload-Draft-Interop-Version': '8', 'Upload-Complete': '?1', 'Content-Length': total}), pieces, 300)
      const [seven, six, eight] = await Promise.all([appendFor(7), appendFor(6), creation])
      for (const [name, responses, first] of [['interop 7 append', seven, 0], ['interop 8 creation', eight, 1]] as const) {
        const progress = responses.slice(first, -1)
        assert.ok(responses.slice(0, -1).every((r) => r.status === 104), `${name}: ${responses.map((r) => r.status)}`)
        assert.equal(responses.at(-1)!.status, first === 0 ? 204 : 201, name)
        assert.ok(progress.length >= 2, `${name}: ${progress.length} progress 104s over ~3.6 s`)
        const offsets = progress.map((r) => Number(r.headers['upload-offset']))
        assert.ok(offsets.every((o, i) => o > 0 && o <= total && (i === 0 || o > offsets[i - 1]!)), `${name}: offsets grow: ${offsets}`)
        assert.ok(progress.every((r) => r.reason === 'Upload Resumption Supported' && r.headers['upload-draft-interop-version'] !== undefined), name)
        assert.equal(responses.at(-1)!.headers['upload-offset'], String(total))
      }
      assert.ok(eight[0]!.headers.location, 'the creation 104 still comes first, with Location')
      assert.deepEqual(six.map((r) => r.status), [204], 'interop 6 defines no progress 104s')
    })

    it('an unsupported interop version gets 400 and no 104', async () => {
      const responses = await raw(`${node.url}/files/`, requestHead('POST', `${node.url}/files/`, {'Upload-Draft-Interop-Version': '2', 'Upload-Complete': '?1', 'Content-Length': 3}), Buffer.from('abc'))
      assert.deepEqual(responses.map((r) => r.status), [400])
    })

    it('sends no 104 to an HTTP/1.0 client, which could not tell it from the final answer', async () => {
      const responses = await raw(
        `${node.url}/files/`,
        requestHead('POST', `${node.url}/files/`, {'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?1', 'Content-Length': 3}),
        Buffer.from('abc'),
        {httpVersion: 'HTTP/1.0'}
      )
      assert.deepEqual(responses.map((r) => r.status), [201])
    })

    it('answers OPTIONS with Accept-Patch: application/partial-upload and Upload-Limit (interop 8)', async () => {
      const res = await request('OPTIONS', `${node.url}/files/`, {headers: {'Upload-Draft-Interop-Version': '8'}})
      assert.ok(res.status === 200 || res.status === 204)
      assert.match(String(res.headers['accept-patch']), /application\/partial-upload/)
      assert.match(String(res.headers['upload-limit']), /max-size=8388608/)
    })

    it('leaves tus requests to tus: an upload made with tus is visible through the draft and the other way round', async () => {
      const tus = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': 3}})
      assert.equal(tus.status, 201)
      const tusLocation = new URL(tus.headers.location!, node.url).toString()
      const head = await request('HEAD', tusLocation, {headers: {'Upload-Draft-Interop-Version': '6'}})
      assert.equal(head.status, 204)
      assert.equal(head.headers['upload-length'], '3')

      const draft = await request('POST', `${node.url}/files/`, {headers: {'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?0', 'Upload-Length': 3}, body: 'ab'})
      const tusHead = await request('HEAD', new URL(draft.headers.location!, node.url).toString(), {headers: TUS})
      assert.equal(tusHead.status, 200)
      assert.equal(tusHead.headers['upload-offset'], '2')
    })

    it('a new request on an upload stops the append still in flight, then answers with the offset it reached', async () => {
      const v = {'Upload-Draft-Interop-Version': '6'}
      const create = await request('POST', `${node.url}/files/`, {headers: {...v, 'Upload-Complete': '?0', 'Upload-Length': 1_000_000}, body: ''})
      const location = new URL(create.headers.location!, node.url).toString()
      // An append whose client stalls after 300 000 bytes: its connection stays open.
      const {hostname, port} = new URL(location)
      const stalled = net.connect(Number(port), hostname)
      const closed = new Promise<void>((resolve) => stalled.once('close', () => resolve()))
      stalled.on('error', () => {})
      stalled.write(requestHead('PATCH', location, {...v, 'Content-Type': 'application/partial-upload', 'Upload-Complete': '?1', 'Upload-Offset': 0, 'Content-Length': 1_000_000}))
      stalled.write(randomBytes(300_000))
      await new Promise((r) => setTimeout(r, 300))

      const head = await request('HEAD', location, {headers: v})
      assert.equal(head.status, 204)
      assert.equal(head.headers['upload-offset'], '300000')
      await closed // the superseded request was ended by the server
      const patch = await request('PATCH', location, {headers: {...v, 'Content-Type': 'application/partial-upload', 'Upload-Complete': '?0', 'Upload-Offset': 300_000}, body: randomBytes(1000)})
      assert.equal(patch.status, 204)
      assert.equal(patch.headers['upload-offset'], '301000')
    })
  })
})

describe('IETF resumable uploads draft with authentication', () => {
  let node: TestNode
  const secret = 'a-test-secret-that-is-long-enough-for-hs256'
  before(async () => {
    node = await startTestNode('embedded', {authJwtSecret: secret})
  })
  after(() => node.stop())

  async function token(sub: string): Promise<string> {
    const {SignJWT} = await import('jose')
    return new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject(sub).setExpirationTime('1h').sign(new TextEncoder().encode(secret))
  }

  it("answers someone else's upload with 404, as a missing one, for HEAD, PATCH and DELETE", async () => {
    const v = {'Upload-Draft-Interop-Version': '6'}
    const alice = {Authorization: `Bearer ${await token('alice')}`}
    const bob = {Authorization: `Bearer ${await token('bob')}`}
    const create = await request('POST', `${node.url}/files/`, {headers: {...v, ...alice, 'Upload-Complete': '?0', 'Upload-Length': 4}, body: 'ab'})
    assert.equal(create.status, 201)
    const location = new URL(create.headers.location!, node.url).toString()
    assert.equal((await node.uploads.findById(new URL(location).pathname.split('/').pop()!))?.owner, 'alice')

    assert.equal((await request('HEAD', location, {headers: {...v, ...bob}})).status, 404)
    assert.equal((await request('PATCH', location, {headers: {...v, ...bob, 'Content-Type': 'application/partial-upload', 'Upload-Complete': '?1', 'Upload-Offset': 2}, body: 'cd'})).status, 404)
    assert.equal((await request('DELETE', location, {headers: {...v, ...bob}})).status, 404)
    assert.equal((await request('HEAD', location, {headers: {...v, ...alice}})).headers['upload-offset'], '2')
    assert.equal((await request('HEAD', location, {headers: v})).status, 401)
  })
})
