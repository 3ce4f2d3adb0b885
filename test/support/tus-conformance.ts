/**
 * The tus 1.0.0 protocol text (core and every extension we list in Tus-Extension), one case per
 * MUST / MUST NOT / SHOULD sentence the server can be held to, each quoting its sentence. A case
 * takes a base URL only (HTTP in, HTTP out), so the same table runs against one node and against
 * a cluster behind a load balancer; every request a case makes through `t.send` is recorded
 * (status and protocol headers, with ids, hosts and dates normalised) so two runs can be
 * compared answer by answer. Sentences addressed only to clients are listed in docs/protocol.md.
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import net from 'node:net'
import {request, type RawResponse} from './http.js'

/** What a case is run with: the server's public base URL and its configured limits. */
export interface Target {
  base: string
  maxSize: number
  /** How long an unfinished upload lives without progress (ms). */
  expiryMs: number
}

export interface Observation {
  request: string
  status: number
  headers: Record<string, string>
}

type Headers = Record<string, string | number | undefined>

export class Conformance {
  readonly observations: Observation[] = []
  constructor(readonly target: Target) {}

  get base(): string {
    return this.target.base
  }

  /** A request whose answer is part of the comparison between runs. */
  async send(method: string, url: string, options: {headers?: Headers; body?: Buffer | string} = {}, label = ''): Promise<RawResponse> {
    const res = await request(method, this.absolute(url), options)
    this.observations.push({request: `${method} ${label || this.pathOf(url)}`, status: res.status, headers: normalise(res)})
    return res
  }

  /** A request that only waits for something (polling): not compared. */
  quiet(method: string, url: string, options: {headers?: Headers; body?: Buffer | string} = {}): Promise<RawResponse> {
    return request(method, this.absolute(url), options)
  }

  absolute(url: string): string {
    return new URL(url, this.base).toString()
  }

  private pathOf(url: string): string {
    const path = new URL(url, this.base).pathname
    return path.replace(/\/files\/[^/]+/, '/files/<id>')
  }

  /** Creates an upload (201 asserted) and returns its absolute URL. */
  async create(length: number | null, headers: Headers = {}, body?: Buffer | string): Promise<string> {
    const res = await this.send('POST', '/files/', {headers: {...TUS, ...(length === null ? {'Upload-Defer-Length': '1'} : {'Upload-Length': length}), ...headers}, ...(body !== undefined ? {body} : {})})
    assert.equal(res.status, 201, res.body)
    return this.absolute(String(res.headers.location))
  }

  async patch(url: string, offset: number, body: Buffer | string, headers: Headers = {}): Promise<RawResponse> {
    return this.send('PATCH', url, {headers: {...PATCH, 'Upload-Offset': offset, ...headers}, body})
  }

  head(url: string): Promise<RawResponse> {
    return this.send('HEAD', url, {headers: TUS})
  }

  async options(headers: Headers = {}): Promise<RawResponse> {
    return this.send('OPTIONS', '/files/', {headers})
  }

  /** The status API's view of an upload (not a protocol answer: not compared). */
  async record(url: string): Promise<{status: string; size: number | null; offset: number; sha256: string | null} | undefined> {
    const res = await this.quiet('GET', `/api/uploads/${idOf(url)}`)
    return res.status === 200 ? (JSON.parse(res.body) as {status: string; size: number | null; offset: number; sha256: string | null}) : undefined
  }

  /** Waits until the upload has all its bytes and is completed (or already further, in a node that transcodes). */
  async waitForCompletion(url: string): Promise<void> {
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline) {
      const status = (await this.record(url))?.status
      if (status && FINISHED.includes(status)) return
      await pause(100)
    }
    assert.fail(`${url} never completed`)
  }

  /** The id of the newest upload the status API lists (partials are not listed): to see that nothing was created. */
  async newestUpload(): Promise<string | undefined> {
    const res = await this.quiet('GET', '/api/uploads?limit=1')
    assert.equal(res.status, 200, res.body)
    return (JSON.parse(res.body) as {uploads: Array<{id: string}>}).uploads[0]?.id
  }
}

export const TUS = {'Tus-Resumable': '1.0.0'}
export const PATCH = {...TUS, 'Content-Type': 'application/offset+octet-stream'}
const OUR_EXTENSIONS = ['creation', 'creation-with-upload', 'creation-defer-length', 'termination', 'expiration', 'checksum', 'checksum-trailer', 'concatenation', 'concatenation-unfinished']
const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/
const PROTOCOL_HEADERS = ['tus-resumable', 'tus-version', 'tus-extension', 'tus-max-size', 'tus-checksum-algorithm', 'upload-offset', 'upload-length', 'upload-defer-length', 'upload-metadata', 'upload-concat', 'upload-expires', 'location', 'cache-control']
const FINISHED = ['completed', 'processing', 'ready', 'failed']
const idOf = (url: string) => new URL(url).pathname.split('/').pop()!
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
const sha256 = (data: string) => createHash('sha256').update(data).digest('hex')
const digest = (algorithm: string, data: string) => `${algorithm} ${createHash(algorithm).update(data).digest('base64')}`
const extensionsOf = (res: RawResponse) => String(res.headers['tus-extension'] ?? '').split(',')

function normalise(res: RawResponse): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of PROTOCOL_HEADERS) {
    const value = res.headers[name]
    if (value === undefined) continue
    let text = String(value)
    if (name === 'upload-expires') text = IMF_FIXDATE.test(text) ? '<IMF-fixdate>' : `<not a date: ${text}>`
    if (name === 'location' || name === 'upload-concat') text = text.replace(/(https?:\/\/[^/ ]+)?\/files\/[A-Za-z0-9_-]+/g, '/files/<id>')
    out[name] = text
  }
  return out
}

/** Sends a request head and part of its body on a raw socket, then drops the connection. */
async function cutRequest(url: string, head: string, sent: Buffer): Promise<void> {
  const {hostname, port} = new URL(url)
  const socket = net.connect(Number(port), hostname)
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.write(head)
  socket.write(sent)
  await pause(300)
  socket.destroy()
}

/** Sends a request head with Expect: 100-continue; what the server answers before any body byte. */
async function interimBeforeBody(url: string, head: string): Promise<string> {
  const {hostname, port} = new URL(url)
  const socket = net.connect(Number(port), hostname)
  let received = ''
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')))
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.write(head)
  const deadline = Date.now() + 5000
  while (!received.includes('\r\n\r\n') && Date.now() < deadline) await pause(20)
  socket.destroy()
  return received
}

function rawHead(method: string, url: string, headers: Record<string, string | number>): string {
  const {host, pathname} = new URL(url)
  return `${method} ${pathname} HTTP/1.1\r\nHost: ${host}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
}

export interface ConformanceCase {
  /** Where the sentence stands in the protocol text. */
  section: string
  /** The sentence, quoted exactly. */
  sentence: string
  run(t: Conformance): Promise<void>
}

const section = (name: string, cases: Array<Omit<ConformanceCase, 'section'>>): ConformanceCase[] => cases.map((c) => ({section: name, ...c}))

export const CONFORMANCE_CASES: ConformanceCase[] = [
  ...section('Core Protocol: Headers', [
    {
      sentence: 'The `Upload-Offset` request and response header indicates a byte offset within a resource. The value MUST be a non-negative integer.',
      async run(t) {
        const url = await t.create(4)
        for (const offset of ['-1', 'abc', '1.5']) assert.equal((await t.patch(url, offset as never, 'x')).status, 400, offset)
        const res = await t.patch(url, 0, 'ab')
        assert.match(String(res.headers['upload-offset']), /^\d+$/)
        assert.match(String((await t.head(url)).headers['upload-offset']), /^\d+$/)
      },
    },
    {
      sentence: 'The `Upload-Length` request and response header indicates the size of the entire upload in bytes. The value MUST be a non-negative integer.',
      async run(t) {
        for (const length of ['-1', 'ten', '1e3']) assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': length}})).status, 400, length)
        const url = await t.create(0)
        assert.equal((await t.head(url)).headers['upload-length'], '0')
      },
    },
    {
      sentence: "The `Tus-Version` response header MUST be a comma-separated list of protocol versions supported by the Server. The list MUST be sorted by Server's preference where the first one is the most preferred one.",
      async run(t) {
        assert.equal((await t.options()).headers['tus-version'], '1.0.0')
      },
    },
    {
      sentence: 'The `Tus-Resumable` header MUST be included in every request and response except for `OPTIONS` requests. The value MUST be the version of the protocol used by the Client or the Server.',
      async run(t) {
        const url = await t.create(3)
        const answers = [await t.head(url), await t.patch(url, 0, 'abc'), await t.patch(url, 1, 'x'), await t.head(`${t.base}/files/nosuchupload`), await t.send('DELETE', url, {headers: TUS})]
        for (const res of answers) assert.equal(res.headers['tus-resumable'], '1.0.0', String(res.status))
      },
    },
    {
      sentence: 'If the version specified by the Client is not supported by the Server, it MUST respond with the `412 Precondition Failed` status and MUST include the `Tus-Version` header into the response. In addition, the Server MUST NOT process the request.',
      async run(t) {
        const before = await t.newestUpload()
        const res = await t.send('POST', '/files/', {headers: {'Tus-Resumable': '0.2.2', 'Upload-Length': 5}})
        assert.equal(res.status, 412)
        assert.equal(res.headers['tus-version'], '1.0.0')
        assert.equal(res.headers.location, undefined)
        assert.equal(await t.newestUpload(), before)
        const url = await t.create(3)
        assert.equal((await t.send('PATCH', url, {headers: {...PATCH, 'Tus-Resumable': '2.0.0', 'Upload-Offset': 0}, body: 'abc'})).status, 412)
        assert.equal((await t.head(url)).headers['upload-offset'], '0')
      },
    },
    {
      sentence: 'The `Tus-Extension` response header MUST be a comma-separated list of the extensions supported by the Server. If no extensions are supported, the `Tus-Extension` header MUST be omitted.',
      async run(t) {
        assert.deepEqual(extensionsOf(await t.options()).sort(), [...OUR_EXTENSIONS].sort())
      },
    },
    {
      sentence: 'The `Tus-Max-Size` response header MUST be a non-negative integer indicating the maximum allowed size of an entire upload in bytes. The Server SHOULD set this header if there is a known hard limit.',
      async run(t) {
        assert.equal((await t.options()).headers['tus-max-size'], String(t.target.maxSize))
      },
    },
    {
      sentence: "The `X-HTTP-Method-Override` request header MUST be a string which MUST be interpreted as the request's method by the Server, if the header is presented. The actual method of the request MUST be ignored.",
      async run(t) {
        const url = await t.create(6)
        const patch = await t.send('POST', url, {headers: {...PATCH, 'X-HTTP-Method-Override': 'PATCH', 'Upload-Offset': 0}, body: 'abc'})
        assert.equal(patch.status, 204)
        assert.equal(patch.headers['upload-offset'], '3')
        assert.equal((await t.send('POST', url, {headers: {...TUS, 'X-HTTP-Method-Override': 'DELETE'}})).status, 204)
        assert.ok([404, 410].includes((await t.head(url)).status))
      },
    },
  ]),
  ...section('Core Protocol: HEAD', [
    {
      sentence: 'The Server MUST always include the `Upload-Offset` header in the response for a `HEAD` request, even if the offset is `0`, or the upload is already considered completed.',
      async run(t) {
        const url = await t.create(3)
        assert.equal((await t.head(url)).headers['upload-offset'], '0')
        await t.patch(url, 0, 'abc')
        await t.waitForCompletion(url)
        assert.equal((await t.head(url)).headers['upload-offset'], '3')
      },
    },
    {
      sentence: 'If the size of the upload is known, the Server MUST include the `Upload-Length` header in the response.',
      async run(t) {
        assert.equal((await t.head(await t.create(7))).headers['upload-length'], '7')
      },
    },
    {
      sentence: 'If the resource is not found, the Server SHOULD return either the `404 Not Found`, `410 Gone` or `403 Forbidden` status without the `Upload-Offset` header.',
      async run(t) {
        const missing = await t.head(`${t.base}/files/0123456789abcdef0123456789abcdef`)
        assert.equal(missing.status, 404)
        assert.equal(missing.headers['upload-offset'], undefined)
        const url = await t.create(3)
        await t.send('DELETE', url, {headers: TUS})
        const gone = await t.head(url)
        assert.equal(gone.status, 410)
        assert.equal(gone.headers['upload-offset'], undefined)
      },
    },
    {
      sentence: 'The Server MUST prevent the client and/or proxies from caching the response by adding the `Cache-Control: no-store` header to the response.',
      async run(t) {
        assert.equal((await t.head(await t.create(3))).headers['cache-control'], 'no-store')
      },
    },
  ]),
  ...section('Core Protocol: PATCH', [
    {
      sentence: 'The Server SHOULD accept `PATCH` requests against any upload URL and apply the bytes contained in the message at the given offset specified by the `Upload-Offset` header.',
      async run(t) {
        const content = 'hello, resumable world'
        const url = await t.create(content.length)
        assert.equal((await t.patch(url, 0, content.slice(0, 7))).status, 204)
        assert.equal((await t.patch(url, 7, content.slice(7))).status, 204)
        await t.waitForCompletion(url)
        assert.equal((await t.record(url))?.sha256, sha256(content))
      },
    },
    {
      sentence: 'All `PATCH` requests MUST use `Content-Type: application/offset+octet-stream`, otherwise the server SHOULD return a `415 Unsupported Media Type` status.',
      async run(t) {
        const url = await t.create(3)
        assert.equal((await t.send('PATCH', url, {headers: {...TUS, 'Content-Type': 'application/octet-stream', 'Upload-Offset': 0}, body: 'abc'})).status, 415)
        assert.equal((await t.send('PATCH', url, {headers: {...TUS, 'Upload-Offset': 0}, body: 'abc'})).status, 415)
        assert.equal((await t.head(url)).headers['upload-offset'], '0')
      },
    },
    {
      sentence: 'If the offsets do not match, the Server MUST respond with the `409 Conflict` status without modifying the upload resource.',
      async run(t) {
        const url = await t.create(10)
        await t.patch(url, 0, 'abc')
        const conflict = await t.patch(url, 1, 'zzzz')
        assert.equal(conflict.status, 409)
        assert.equal(conflict.headers['upload-offset'], '3', 'and says where the upload is')
        assert.equal((await t.patch(url, 5, 'zz')).status, 409)
        assert.equal((await t.head(url)).headers['upload-offset'], '3')
        assert.equal((await t.record(url))?.offset, 3)
      },
    },
    {
      sentence: 'The Server MUST acknowledge successful `PATCH` requests with the `204 No Content` status. It MUST include the `Upload-Offset` header containing the new offset. The new offset MUST be the sum of the offset before the `PATCH` request and the number of bytes received and processed or stored during the current `PATCH` request.',
      async run(t) {
        const url = await t.create(12)
        const first = await t.patch(url, 0, 'abcde')
        assert.equal(first.status, 204)
        assert.equal(first.headers['upload-offset'], '5')
        const second = await t.patch(url, 5, 'fghijkl')
        assert.equal(second.status, 204)
        assert.equal(second.headers['upload-offset'], '12')
        assert.equal(second.body, '')
      },
    },
    {
      sentence: 'If the server receives a `PATCH` request against a non-existent resource it SHOULD return a `404 Not Found` status.',
      async run(t) {
        assert.equal((await t.patch(`${t.base}/files/0123456789abcdef0123456789abcdef`, 0, 'x')).status, 404)
      },
    },
    {
      sentence: 'Both Client and Server, SHOULD attempt to detect and handle network errors predictably.',
      async run(t) {
        // A connection dropped mid-body leaves an upload that answers HEAD and takes the rest.
        const url = await t.create(40_000)
        await cutRequest(url, rawHead('PATCH', url, {...PATCH, 'Upload-Offset': 0, 'Content-Length': 40_000}), Buffer.alloc(10_000, 120))
        const offset = Number((await t.quiet('HEAD', url, {headers: TUS})).headers['upload-offset'])
        assert.ok(offset >= 0 && offset <= 10_000, String(offset))
        const rest = await t.quiet('PATCH', url, {headers: {...PATCH, 'Upload-Offset': offset}, body: Buffer.alloc(40_000 - offset, 120)})
        assert.equal(rest.status, 204)
        assert.equal(rest.headers['upload-offset'], '40000')
      },
    },
    {
      sentence: 'The Server SHOULD always attempt to store as much of the received data as possible.',
      async run(t) {
        const url = await t.create(40_000)
        await cutRequest(url, rawHead('PATCH', url, {...PATCH, 'Upload-Offset': 0, 'Content-Length': 40_000}), Buffer.alloc(20_000, 121))
        const deadline = Date.now() + 5000
        let offset = 0
        while (offset < 20_000 && Date.now() < deadline) {
          offset = Number((await t.quiet('HEAD', url, {headers: TUS})).headers['upload-offset'])
          if (offset < 20_000) await pause(100)
        }
        assert.equal(offset, 20_000, 'every byte that arrived was kept')
      },
    },
  ]),
  ...section('Core Protocol: OPTIONS', [
    {
      sentence: 'A successful response indicated by the `204 No Content` or `200 OK` status MUST contain the `Tus-Version` header.',
      async run(t) {
        const res = await t.options()
        assert.equal(res.status, 200)
        assert.equal(res.headers['tus-version'], '1.0.0')
        assert.equal(res.headers['content-length'], '0')
        assert.equal(res.body, '')
      },
    },
    {
      sentence: 'The Client SHOULD NOT include the `Tus-Resumable` header in the request and the Server MUST ignore the header.',
      async run(t) {
        for (const version of ['1.0.0', '0.0.1']) {
          const res = await t.options({'Tus-Resumable': version})
          assert.equal(res.status, 200, version)
          assert.equal(res.headers['tus-version'], '1.0.0')
        }
      },
    },
  ]),
  ...section('Protocol Extensions', [
    {
      sentence: 'Feature detection SHOULD be achieved by the Client sending an `OPTIONS` request and the Server responding with the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).length > 0)
      },
    },
  ]),
  ...section('Creation', [
    {
      sentence: 'If the Server supports this extension, it MUST add `creation` to the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).includes('creation'))
      },
    },
    {
      sentence: 'The `Upload-Defer-Length` request and response header indicates that the size of the upload is not known currently and will be transferred later. Its value MUST be `1`. If the length of an upload is not deferred, this header MUST be omitted.',
      async run(t) {
        assert.equal((await t.head(await t.create(null))).headers['upload-defer-length'], '1')
        assert.equal((await t.head(await t.create(5))).headers['upload-defer-length'], undefined)
      },
    },
    {
      sentence: 'The `Upload-Metadata` request and response header MUST consist of one or more comma-separated key-value pairs. The key and value MUST be separated by a space. The key MUST NOT contain spaces and commas and MUST NOT be empty. The key SHOULD be ASCII encoded and the value MUST be Base64 encoded. All keys MUST be unique.',
      async run(t) {
        const b64 = Buffer.from('a.mp4').toString('base64')
        for (const metadata of [`filename ${b64},filename ${b64}`, 'filename not*base64', `filename ${b64} extra`]) {
          assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': 1, 'Upload-Metadata': metadata}})).status, 400, metadata)
        }
        const url = await t.create(1, {'Upload-Metadata': `filename ${b64},is_confidential`})
        assert.deepEqual(String((await t.head(url)).headers['upload-metadata']).split(',').sort(), [`filename ${b64}`, 'is_confidential'])
      },
    },
    {
      sentence: 'Since metadata can contain arbitrary binary values, Servers SHOULD carefully validate metadata values or sanitize them before using them as header values to avoid header smuggling.',
      async run(t) {
        const hostile = Buffer.from('x.mp4\r\nX-Smuggled: 1\r\n\r\n').toString('base64')
        const url = await t.create(1, {'Upload-Metadata': `filename ${hostile}`})
        const head = await t.head(url)
        assert.equal(head.headers['x-smuggled'], undefined)
        assert.equal(head.headers['upload-metadata'], `filename ${hostile}`, 'echoed as base64, never decoded into a header')
      },
    },
    {
      sentence: 'The request MUST include one of the following headers: a) `Upload-Length` to indicate the size of an entire upload in bytes. b) `Upload-Defer-Length: 1` if upload size is not known at the time.',
      async run(t) {
        assert.equal((await t.send('POST', '/files/', {headers: TUS})).status, 400)
        assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': 3, 'Upload-Defer-Length': 1}})).status, 400)
      },
    },
    {
      sentence: 'Once set the length MUST NOT be changed.',
      async run(t) {
        const url = await t.create(null)
        assert.equal((await t.patch(url, 0, 'ab', {'Upload-Length': 6})).status, 204)
        assert.equal((await t.patch(url, 2, 'cd', {'Upload-Length': 9})).status, 400)
        assert.equal((await t.head(url)).headers['upload-length'], '6')
      },
    },
    {
      sentence: 'As long as the length of the upload is not known, the Server MUST set `Upload-Defer-Length: 1` in all responses to `HEAD` requests.',
      async run(t) {
        const url = await t.create(null)
        await t.patch(url, 0, 'abc')
        const head = await t.head(url)
        assert.equal(head.headers['upload-defer-length'], '1')
        assert.equal(head.headers['upload-length'], undefined)
      },
    },
    {
      sentence: 'If the `Upload-Defer-Length` header contains any other value than `1` the server should return a `400 Bad Request` status.',
      async run(t) {
        for (const value of ['0', '2', 'yes']) assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Defer-Length': value}})).status, 400, value)
      },
    },
    {
      sentence: 'If the Server supports deferring length, it MUST add `creation-defer-length` to the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).includes('creation-defer-length'))
      },
    },
    {
      sentence: 'If an upload contains additional metadata, responses to `HEAD` requests MUST include the `Upload-Metadata` header and its value as specified by the Client during the creation.',
      async run(t) {
        const metadata = `filename ${Buffer.from('holiday.mov').toString('base64')},filetype ${Buffer.from('video/quicktime').toString('base64')}`
        assert.deepEqual(String((await t.head(await t.create(4, {'Upload-Metadata': metadata}))).headers['upload-metadata']).split(',').sort(), metadata.split(',').sort())
      },
    },
    {
      sentence: 'If the length of the upload exceeds the maximum, which MAY be specified using the `Tus-Max-Size` header, the Server MUST respond with the `413 Request Entity Too Large` status.',
      async run(t) {
        const before = await t.newestUpload()
        assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': t.target.maxSize + 1}})).status, 413)
        assert.equal(await t.newestUpload(), before)
        const deferred = await t.create(null)
        assert.equal((await t.patch(deferred, 0, 'x', {'Upload-Length': t.target.maxSize + 1})).status, 413)
      },
    },
    {
      sentence: 'The Server MUST acknowledge a successful upload creation with the `201 Created` status. The Server MUST set the `Location` header to the URL of the created resource.',
      async run(t) {
        const res = await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': 10}})
        assert.equal(res.status, 201)
        const location = new URL(String(res.headers.location), t.base)
        assert.match(location.pathname, /^\/files\/[A-Za-z0-9_-]+$/)
        assert.equal((await t.head(location.toString())).status, 200)
      },
    },
  ]),
  ...section('Creation With Upload', [
    {
      sentence: 'If the Server supports this extension, it MUST advertise this by including `creation-with-upload` in the `Tus-Extension` header. Furthermore, this extension depends directly on the Creation extension. Therefore, if the Server does not offer the Creation extension, it MUST NOT offer the Creation With Upload extension either.',
      async run(t) {
        const extensions = extensionsOf(await t.options())
        assert.ok(extensions.includes('creation-with-upload') && extensions.includes('creation'))
      },
    },
    {
      sentence: 'The Client MUST include the `Content-Type: application/offset+octet-stream` header.',
      async run(t) {
        const before = await t.newestUpload()
        assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': 5, 'Content-Type': 'text/plain'}, body: 'hello'})).status, 415)
        assert.equal(await t.newestUpload(), before, 'nothing was created')
      },
    },
    {
      sentence: 'The Server SHOULD accept as many bytes as possible and MUST include the `Upload-Offset` header in the response and MUST set its value to the offset of the upload after applying the accepted bytes.',
      async run(t) {
        const res = await t.send('POST', '/files/', {headers: {...PATCH, 'Upload-Length': 11}, body: 'hello'})
        assert.equal(res.status, 201)
        assert.equal(res.headers['upload-offset'], '5')
        assert.equal((await t.head(String(res.headers.location))).headers['upload-offset'], '5')
      },
    },
    {
      sentence: 'In addition, the Client SHOULD include the `Expect: 100-continue` header in the request to receive early feedback from the Server on whether it will accept the creation request, before attempting to transfer the first chunk.',
      async run(t) {
        const accepted = await interimBeforeBody(t.base, rawHead('POST', `${t.base}/files/`, {...PATCH, 'Upload-Length': 5, 'Content-Length': 5, Expect: '100-continue'}))
        assert.match(accepted, /^HTTP\/1\.1 100 /)
      },
    },
  ]),
  ...section('Expiration', [
    {
      sentence: 'In order to indicate this behavior to the Client, the Server MUST add `expiration` to the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).includes('expiration'))
      },
    },
    {
      sentence: 'This header MUST be included in every `PATCH` response if the upload is going to expire.',
      async run(t) {
        const url = await t.create(6)
        assert.match(String((await t.patch(url, 0, 'abc')).headers['upload-expires']), IMF_FIXDATE)
        assert.equal((await t.patch(url, 3, 'def')).headers['upload-expires'], undefined, 'a finished upload does not expire')
      },
    },
    {
      sentence: 'If the expiration is known at the creation, the `Upload-Expires` header MUST be included in the response to the initial `POST` request.',
      async run(t) {
        const res = await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': 3}})
        const expires = Date.parse(String(res.headers['upload-expires']))
        assert.ok(Math.abs(expires - (Date.now() + t.target.expiryMs)) < 3000, String(res.headers['upload-expires']))
      },
    },
    {
      sentence: 'If a Client does attempt to resume an upload which has since been removed by the Server, the Server SHOULD respond with the`404 Not Found` or `410 Gone` status. The latter one SHOULD be used if the Server is keeping track of expired uploads.',
      async run(t) {
        const url = await t.create(6)
        await t.patch(url, 0, 'abc')
        await pause(t.target.expiryMs + 700)
        assert.equal((await t.head(url)).status, 410)
        assert.equal((await t.patch(url, 3, 'def')).status, 410)
      },
    },
    {
      sentence: 'The value of the `Upload-Expires` header MUST be in RFC 7231 datetime format.',
      async run(t) {
        const url = await t.create(6)
        for (const res of [await t.patch(url, 0, 'a'), await t.head(url)]) assert.match(String(res.headers['upload-expires']), IMF_FIXDATE)
      },
    },
  ]),
  ...section('Checksum', [
    {
      sentence: 'If supported, the Server MUST add `checksum` to the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).includes('checksum'))
      },
    },
    {
      sentence: 'Once the entire request has been received, the Server MUST verify the uploaded chunk against the provided checksum using the specified algorithm.',
      async run(t) {
        const url = await t.create(10)
        assert.equal((await t.patch(url, 0, 'hello', {'Upload-Checksum': digest('sha1', 'hello')})).status, 204)
        const bad = await t.patch(url, 5, 'world', {'Upload-Checksum': digest('sha1', 'WORLD')})
        assert.equal(bad.status, 460)
        assert.equal(bad.statusText, 'Checksum Mismatch')
      },
    },
    {
      sentence: 'In the first two cases the uploaded chunk MUST be discarded, and the upload and its offset MUST NOT be updated.',
      async run(t) {
        const url = await t.create(10)
        await t.patch(url, 0, 'abc')
        for (const [value, status] of [['crc32 AAAAAA==', 400], [digest('sha256', 'other'), 460], ['sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA', 460]] as const) {
          assert.equal((await t.patch(url, 3, 'defg', {'Upload-Checksum': value})).status, status, value)
          assert.equal((await t.head(url)).headers['upload-offset'], '3', value)
        }
        const before = await t.newestUpload()
        assert.equal((await t.send('POST', '/files/', {headers: {...PATCH, 'Upload-Length': 5, 'Upload-Checksum': digest('md5', 'HELLO')}, body: 'hello'})).status, 460)
        // Its chunk is discarded: no upload, or (as @tus/server creates before it reads) an empty one.
        const newest = await t.newestUpload()
        if (newest !== before) assert.equal((await t.record(`${t.base}/files/${newest}`))?.offset, 0)
        assert.equal((await t.patch(url, 3, 'defghij')).status, 204)
        await t.waitForCompletion(url)
        assert.equal((await t.record(url))?.sha256, sha256('abcdefghij'))
      },
    },
    {
      sentence: 'The Server MUST support at least the SHA1 checksum algorithm identified by `sha1`.',
      async run(t) {
        assert.ok(String((await t.options()).headers['tus-checksum-algorithm']).split(',').includes('sha1'))
      },
    },
    {
      sentence: 'The names of the checksum algorithms MUST only consist of ASCII characters with the modification that uppercase characters are excluded.',
      async run(t) {
        for (const name of String((await t.options()).headers['tus-checksum-algorithm']).split(',')) assert.match(name, /^[\x21-\x40\x5b-\x7e]+$/, name)
      },
    },
    {
      sentence: 'The `Tus-Checksum-Algorithm` header MUST be included in the response to an `OPTIONS` request.',
      async run(t) {
        assert.ok((await t.options()).headers['tus-checksum-algorithm'])
      },
    },
    {
      sentence: 'If the Server can handle trailers, this behavior MUST be announced by adding `checksum-trailer` to the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).includes('checksum-trailer'))
      },
    },
    {
      sentence: 'Following RFC 7230 they MUST be announced using the `Trailer` header and are only allowed in chunked transfers.',
      async run(t) {
        const url = await t.create(5)
        assert.equal((await t.patch(url, 0, 'hello', {Trailer: 'Upload-Checksum'})).status, 400, 'a trailer on a body that is not chunked')
        const chunked = await chunkedPatch(url, 0, 'hello', {'Upload-Checksum': digest('sha1', 'hello')})
        assert.equal(chunked.status, 204)
        assert.equal(chunked.offset, '5')
      },
    },
    {
      sentence: 'The `Tus-Checksum-Algorithm` response header MUST be a comma-separated list of the checksum algorithms supported by the server.',
      async run(t) {
        for (const algorithm of String((await t.options()).headers['tus-checksum-algorithm']).split(',')) {
          const url = await t.create(2)
          assert.equal((await t.patch(url, 0, 'ok', {'Upload-Checksum': digest(algorithm, 'ok')})).status, 204, algorithm)
        }
      },
    },
    {
      sentence: 'The header MUST consist of the name of the used checksum algorithm and the Base64 encoded checksum separated by a space.',
      async run(t) {
        const url = await t.create(2)
        for (const value of ['sha1', 'sha1:abc', 'sha1 not base64!']) assert.equal((await t.patch(url, 0, 'ok', {'Upload-Checksum': value})).status, 400, value)
        assert.equal((await t.head(url)).headers['upload-offset'], '0')
      },
    },
  ]),
  ...section('Termination', [
    {
      sentence: 'If this extension is supported by the Server, it MUST be announced by adding `termination` to the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).includes('termination'))
      },
    },
    {
      sentence: 'When receiving a `DELETE` request for an existing upload the Server SHOULD free associated resources and MUST respond with the `204 No Content` status confirming that the upload was terminated.',
      async run(t) {
        const unfinished = await t.create(6)
        await t.patch(unfinished, 0, 'abc')
        assert.equal((await t.send('DELETE', unfinished, {headers: TUS})).status, 204)
        const completed = await t.create(3)
        await t.patch(completed, 0, 'abc')
        assert.equal((await t.send('DELETE', completed, {headers: TUS})).status, 204)
        assert.equal((await t.record(completed))?.status, 'terminated')
      },
    },
    {
      sentence: 'For all future requests to this URL, the Server SHOULD respond with the `404 Not Found` or `410 Gone` status.',
      async run(t) {
        const url = await t.create(6)
        await t.send('DELETE', url, {headers: TUS})
        assert.equal((await t.head(url)).status, 410)
        assert.equal((await t.patch(url, 0, 'abc')).status, 410)
        assert.ok([404, 410].includes((await t.send('DELETE', url, {headers: TUS})).status))
      },
    },
  ]),
  ...section('Concatenation', [
    {
      sentence: 'If the Server supports this extension, it MUST add `concatenation` to the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).includes('concatenation'))
      },
    },
    {
      sentence: 'The Server SHOULD NOT process these partial uploads until they are concatenated to form a final upload.',
      async run(t) {
        const before = await t.newestUpload()
        const part = await t.create(3, {'Upload-Concat': 'partial'})
        await t.patch(part, 0, 'abc')
        await t.waitForCompletion(part)
        await pause(300)
        assert.equal((await t.record(part))?.status, 'completed', 'not taken into processing')
        assert.equal(await t.newestUpload(), before, 'nor listed as an upload of its own')
      },
    },
    {
      sentence: 'The length of the final upload MUST be the sum of the length of all partial uploads.',
      async run(t) {
        const parts = [await t.create(4, {'Upload-Concat': 'partial'}), await t.create(6, {'Upload-Concat': 'partial'})]
        const res = await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${parts.join(' ')}`}})
        assert.equal(res.status, 201)
        assert.equal((await t.head(String(res.headers.location))).headers['upload-length'], '10')
      },
    },
    {
      sentence: 'The partial uploads MUST be concatenated as per the order specified in the list.',
      async run(t) {
        const pieces = ['first ', 'second ', 'third']
        const parts: string[] = []
        for (const piece of pieces) {
          const part = await t.create(piece.length, {'Upload-Concat': 'partial'})
          await t.patch(part, 0, piece)
          parts.push(part)
        }
        const order = [parts[2]!, parts[0]!, parts[1]!]
        const res = await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${order.join(' ')}`}})
        const final = t.absolute(String(res.headers.location))
        await t.waitForCompletion(final)
        assert.equal((await t.record(final))?.sha256, sha256('thirdfirst second '))
      },
    },
    {
      sentence: 'The Client MUST NOT include the `Upload-Length` header in the final upload creation.',
      async run(t) {
        const part = await t.create(3, {'Upload-Concat': 'partial'})
        assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': 3, 'Upload-Concat': `final;${part}`}})).status, 400)
      },
    },
    {
      sentence: 'This feature MUST be explicitly announced by the Server by adding `concatenation-unfinished` to the `Tus-Extension` header.',
      async run(t) {
        assert.ok(extensionsOf(await t.options()).includes('concatenation-unfinished'))
        const part = await t.create(3, {'Upload-Concat': 'partial'})
        assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${part}`}})).status, 201, 'and a final of unfinished partials is taken')
      },
    },
    {
      sentence: "When creating a new final upload the partial uploads' metadata SHALL NOT be transferred to the new final upload.",
      async run(t) {
        const part = await t.create(2, {'Upload-Concat': 'partial', 'Upload-Metadata': `filename ${Buffer.from('part.bin').toString('base64')}`})
        await t.patch(part, 0, 'ab')
        const bare = await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${part}`}})
        assert.equal((await t.head(String(bare.headers.location))).headers['upload-metadata'], undefined)
        const other = await t.create(2, {'Upload-Concat': 'partial'})
        const metadata = `filename ${Buffer.from('whole.mp4').toString('base64')}`
        const named = await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${other}`, 'Upload-Metadata': metadata}})
        assert.equal((await t.head(String(named.headers.location))).headers['upload-metadata'], metadata)
      },
    },
    {
      sentence: 'The Server MUST respond with the `403 Forbidden` status to `PATCH` requests against a final upload URL and MUST NOT modify the final or its partial uploads.',
      async run(t) {
        const part = await t.create(6, {'Upload-Concat': 'partial'})
        await t.patch(part, 0, 'abc')
        const final = t.absolute(String((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${part}`}})).headers.location))
        assert.equal((await t.patch(final, 0, 'xyz')).status, 403)
        assert.equal((await t.patch(final, 3, 'xyz')).status, 403)
        assert.equal((await t.head(part)).headers['upload-offset'], '3')
        assert.equal((await t.head(final)).headers['upload-offset'], '3')
      },
    },
    {
      sentence: 'The response to a HEAD request for a final upload SHOULD NOT contain the `Upload-Offset` header unless the concatenation has been successfully finished.',
      async run(t) {
        // A deliberate departure (docs/protocol.md): the text leaves the value undefined before the
        // end; we answer the bytes of the final available so far, which never exceed what is there.
        const a = await t.create(4, {'Upload-Concat': 'partial'})
        const b = await t.create(4, {'Upload-Concat': 'partial'})
        const final = t.absolute(String((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${a} ${b}`}})).headers.location))
        assert.equal((await t.head(final)).headers['upload-offset'], '0')
        await t.patch(b, 0, 'efgh')
        await t.patch(a, 0, 'ab')
        assert.equal((await t.head(final)).headers['upload-offset'], '2', 'a prefix: the second partial waits for the first')
        await t.patch(a, 2, 'cd')
        assert.equal((await t.head(final)).headers['upload-offset'], '8')
      },
    },
    {
      sentence: 'After successful concatenation, the `Upload-Offset` and `Upload-Length` MUST be set and their values MUST be equal.',
      async run(t) {
        const parts = [await t.create(3, {'Upload-Concat': 'partial'}), await t.create(4, {'Upload-Concat': 'partial'})]
        await t.patch(parts[0]!, 0, 'abc')
        await t.patch(parts[1]!, 0, 'defg')
        const final = t.absolute(String((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${parts.join(' ')}`}})).headers.location))
        const head = await t.head(final)
        assert.equal(head.headers['upload-offset'], '7')
        assert.equal(head.headers['upload-length'], '7')
        await t.waitForCompletion(final)
        const after = await t.head(final)
        assert.equal(after.headers['upload-offset'], '7')
        assert.equal(after.headers['upload-length'], '7')
      },
    },
    {
      sentence: 'The response to a HEAD request for a partial upload MUST contain the `Upload-Offset` header.',
      async run(t) {
        const part = await t.create(5, {'Upload-Concat': 'partial'})
        assert.equal((await t.head(part)).headers['upload-offset'], '0')
        await t.patch(part, 0, 'ab')
        assert.equal((await t.head(part)).headers['upload-offset'], '2')
      },
    },
    {
      sentence: 'The `Upload-Length` header MUST be included if the length of the final resource can be calculated at the time of the request.',
      async run(t) {
        const known = await t.create(3, {'Upload-Concat': 'partial'})
        const deferred = await t.create(null, {'Upload-Concat': 'partial'})
        const final = t.absolute(String((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${known} ${deferred}`}})).headers.location))
        assert.equal((await t.head(final)).headers['upload-length'], undefined)
        await t.patch(deferred, 0, 'x', {'Upload-Length': 2})
        assert.equal((await t.head(final)).headers['upload-length'], '5')
      },
    },
    {
      sentence: 'Response to `HEAD` request against partial or final upload MUST include the `Upload-Concat` header and its value as received in the upload creation request.',
      async run(t) {
        const part = await t.create(2, {'Upload-Concat': 'partial'})
        assert.equal((await t.head(part)).headers['upload-concat'], 'partial')
        const value = `final;${new URL(part).pathname}`
        const final = t.absolute(String((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': value}})).headers.location))
        assert.equal((await t.head(final)).headers['upload-concat'], value)
      },
    },
    {
      sentence: 'If the upload is a partial one, the header value MUST be `partial`. In the case of a final upload, its value MUST be `final` followed by a semicolon and a space-separated list of partial upload URLs that will be concatenated.',
      async run(t) {
        const part = await t.create(2, {'Upload-Concat': 'partial'})
        for (const value of ['partially', `final ${part}`, 'final;', `final,${part}`]) {
          assert.equal((await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Length': 2, 'Upload-Concat': value}})).status, 400, value)
        }
      },
    },
    {
      sentence: 'The partial uploads URLs MAY be absolute or relative and MUST NOT contain spaces as defined in RFC 3986.',
      async run(t) {
        const a = await t.create(1, {'Upload-Concat': 'partial'})
        const b = await t.create(1, {'Upload-Concat': 'partial'})
        const res = await t.send('POST', '/files/', {headers: {...TUS, 'Upload-Concat': `final;${a} ${new URL(b).pathname}`}})
        assert.equal(res.status, 201)
        assert.equal((await t.head(String(res.headers.location))).headers['upload-length'], '2')
      },
    },
  ]),
]

/** A chunked PATCH with trailers (Node's client, so the framing is right). */
async function chunkedPatch(url: string, offset: number, body: string, trailers: Record<string, string>): Promise<{status: number; offset: string | undefined}> {
  const http = await import('node:http')
  return new Promise((resolve, reject) => {
    const req = http.request(url, {method: 'PATCH', headers: {...PATCH, 'Upload-Offset': String(offset), 'Transfer-Encoding': 'chunked', Trailer: Object.keys(trailers).join(', ')}}, (res) => {
      res.resume()
      res.on('end', () => resolve({status: res.statusCode!, offset: res.headers['upload-offset'] as string | undefined}))
    })
    req.on('error', reject)
    req.write(body)
    req.addTrailers(trailers)
    req.end()
  })
}
