/**
 * tus 1.0.0 core, creation, creation-with-upload, creation-defer-length, expiration and
 * termination, rule by rule, over raw HTTP, against both databases.
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {b64, createUpload, PATCH_HEADERS, request, TUS} from './support/http.js'
import {DATABASE_KINDS, startTestNode, type TestNode} from './support/node.js'

const idOf = (url: string) => new URL(url).pathname.split('/').pop()!

for (const kind of DATABASE_KINDS) {
  describe(`tus protocol (${kind} database)`, () => {
    let node: TestNode
    before(async () => {
      node = await startTestNode(kind, {maxUploadSize: '1MiB'})
    })
    after(() => node.stop())

    describe('core', () => {
      it('answers OPTIONS with Tus-Version, Tus-Extension and Tus-Max-Size, without requiring Tus-Resumable', async () => {
        const res = await request('OPTIONS', `${node.url}/files/`)
        assert.equal(res.status, 200)
        assert.equal(res.headers['content-length'], '0')
        assert.equal(res.body, '')
        assert.equal(res.headers['tus-version'], '1.0.0')
        assert.deepEqual(String(res.headers['tus-extension']).split(',').sort(), ['checksum', 'checksum-trailer', 'concatenation', 'concatenation-unfinished', 'creation', 'creation-defer-length', 'creation-with-upload', 'expiration', 'termination'])
        assert.equal(res.headers['tus-max-size'], String(1024 * 1024))
      })

      it('answers a browser\'s CORS preflight (Uppy, tus-js-client) with the methods and headers it asked for', async () => {
        const res = await request('OPTIONS', `${node.url}/files/`, {
          headers: {Origin: 'https://app.example', 'Access-Control-Request-Method': 'PATCH', 'Access-Control-Request-Headers': 'tus-resumable,upload-offset,content-type,upload-checksum'},
        })
        assert.ok(res.status >= 200 && res.status < 300, String(res.status))
        assert.equal(res.headers['access-control-allow-origin'], '*')
        assert.match(String(res.headers['access-control-allow-methods']), /PATCH/)
        assert.equal(res.headers['access-control-allow-headers'], 'tus-resumable,upload-offset,content-type,upload-checksum')
        assert.equal(res.body, '')
        // A plain OPTIONS from a page (no preflight) is the discovery answer, readable cross-origin.
        const discovery = await request('OPTIONS', `${node.url}/files/`, {headers: {Origin: 'https://app.example'}})
        assert.equal(discovery.status, 200)
        assert.equal(discovery.headers['tus-version'], '1.0.0')
        assert.equal(discovery.headers['access-control-allow-origin'], '*')
      })

      it('refuses a request without Tus-Resumable with 412 and Tus-Version', async () => {
        const res = await request('POST', `${node.url}/files/`, {headers: {'Upload-Length': '10'}})
        assert.equal(res.status, 412)
        assert.equal(res.headers['tus-version'], '1.0.0')
      })

      it('refuses an unsupported Tus-Resumable with 412 and Tus-Version, and does not process the request', async () => {
        const before = await node.uploads.list({limit: 1000})
        const res = await request('POST', `${node.url}/files/`, {headers: {'Tus-Resumable': '0.2.2', 'Upload-Length': '10'}})
        assert.equal(res.status, 412)
        assert.equal(res.headers['tus-version'], '1.0.0')
        assert.equal(res.headers.location, undefined)
        assert.equal((await node.uploads.list({limit: 1000})).length, before.length)
      })

      it('includes Tus-Resumable in every response but OPTIONS', async () => {
        const url = await createUpload(node.url, 3)
        for (const method of ['HEAD', 'PATCH'] as const) {
          const res = await request(method, url, {headers: method === 'PATCH' ? {...PATCH_HEADERS, 'Upload-Offset': '0'} : TUS, body: method === 'PATCH' ? 'abc' : undefined})
          assert.equal(res.headers['tus-resumable'], '1.0.0', method)
        }
      })

      it('answers HEAD with Upload-Offset, Upload-Length, Cache-Control: no-store and no body', async () => {
        const url = await createUpload(node.url, 10)
        await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'hello'})
        const res = await request('HEAD', url, {headers: TUS})
        assert.equal(res.status, 200)
        assert.equal(res.headers['upload-offset'], '5')
        assert.equal(res.headers['upload-length'], '10')
        assert.equal(res.headers['cache-control'], 'no-store')
        assert.equal(res.body, '')
      })

      it('answers HEAD and PATCH for an unknown upload with 404', async () => {
        assert.equal((await request('HEAD', `${node.url}/files/doesnotexist`, {headers: TUS})).status, 404)
        const patch = await request('PATCH', `${node.url}/files/doesnotexist`, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'x'})
        assert.equal(patch.status, 404)
      })

      it('applies a PATCH at the current offset and answers 204 with the new Upload-Offset', async () => {
        const url = await createUpload(node.url, 11)
        const first = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'hello '})
        assert.equal(first.status, 204)
        assert.equal(first.headers['upload-offset'], '6')
        const second = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '6'}, body: 'world'})
        assert.equal(second.status, 204)
        assert.equal(second.headers['upload-offset'], '11')
        assert.equal(await readFile(path.join(node.dataDir, 'uploads', idOf(url)), 'utf8'), 'hello world')
      })

      it('answers 409 when Upload-Offset does not match, and leaves the file as it was', async () => {
        const url = await createUpload(node.url, 10)
        await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
        const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '1'}, body: 'zzz'})
        assert.equal(res.status, 409)
        assert.equal(res.headers['upload-offset'], '3', 'the 409 says where to resume')
        assert.equal(await readFile(path.join(node.dataDir, 'uploads', idOf(url)), 'utf8'), 'abc')
      })

      it('answers 415 to a PATCH with another Content-Type', async () => {
        const url = await createUpload(node.url, 10)
        for (const contentType of ['application/octet-stream', 'text/plain']) {
          const res = await request('PATCH', url, {headers: {...TUS, 'Content-Type': contentType, 'Upload-Offset': '0'}, body: 'abc'})
          assert.equal(res.status, 415, contentType)
        }
        const missing = await request('PATCH', url, {headers: {...TUS, 'Upload-Offset': '0'}, body: 'abc'})
        assert.equal(missing.status, 415)
        assert.equal((await request('HEAD', url, {headers: TUS})).headers['upload-offset'], '0')
      })

      it('answers 400 to a PATCH without a valid Upload-Offset', async () => {
        const url = await createUpload(node.url, 10)
        assert.equal((await request('PATCH', url, {headers: PATCH_HEADERS, body: 'abc'})).status, 400)
        for (const offset of ['-1', 'abc', '1.5', '01', '99999999999999999999']) {
          const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': offset}, body: 'abc'})
          assert.equal(res.status, 400, offset)
        }
      })

      it('answers 413 to a PATCH whose body goes past Upload-Length', async () => {
        const url = await createUpload(node.url, 4)
        const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abcdefgh'})
        assert.equal(res.status, 413)
        const head = await request('HEAD', url, {headers: TUS})
        assert.ok(Number(head.headers['upload-offset']) <= 4)
      })

      it('gives a reason phrase and a plain-text reason with errors', async () => {
        const res = await request('HEAD', `${node.url}/files/doesnotexist`, {headers: TUS})
        assert.equal(res.statusText, 'Not Found')
        const conflict = await request('PATCH', await createUpload(node.url, 3), {headers: {...PATCH_HEADERS, 'Upload-Offset': '2'}, body: 'x'})
        assert.match(String(conflict.headers['content-type']), /^text\/plain/)
        assert.match(conflict.body, /offset/i)
      })
    })

    describe('creation', () => {
      it('creates an upload: 201 with an absolute Location', async () => {
        const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '100'}})
        assert.equal(res.status, 201)
        assert.match(String(res.headers.location), new RegExp(`^${node.url}/files/[A-Za-z0-9_-]+$`))
        const row = await node.uploads.findById(idOf(String(res.headers.location)))
        assert.equal(row?.status, 'uploading')
        assert.equal(row?.size, 100)
      })

      it('answers 400 without Upload-Length or Upload-Defer-Length, or with both', async () => {
        assert.equal((await request('POST', `${node.url}/files/`, {headers: TUS})).status, 400)
        const both = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', 'Upload-Defer-Length': '1'}})
        assert.equal(both.status, 400)
      })

      it('answers 400 to a malformed Upload-Length', async () => {
        for (const length of ['-5', 'ten', '1e3', '']) {
          const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': length}})
          assert.equal(res.status, 400, JSON.stringify(length))
        }
      })

      it('answers 413 when Upload-Length exceeds Tus-Max-Size', async () => {
        const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': String(1024 * 1024 + 1)}})
        assert.equal(res.status, 413)
      })

      it('stores Upload-Metadata and echoes it on HEAD; a key may have no value', async () => {
        const metadata = `filename ${b64('clip.mp4')},filetype ${b64('video/mp4')},is_confidential`
        const url = await createUpload(node.url, 10, {'Upload-Metadata': metadata})
        const head = await request('HEAD', url, {headers: TUS})
        const pairs = String(head.headers['upload-metadata']).split(',').sort()
        assert.deepEqual(pairs, metadata.split(',').sort())
        const row = await node.uploads.findById(idOf(url))
        assert.equal(row?.filename, 'clip.mp4')
        assert.equal(row?.filetype, 'video/mp4')
      })

      it('answers 400 to malformed Upload-Metadata', async () => {
        const malformed = ['filename not_base64!', 'filename abc', `a ${b64('x')},a ${b64('y')}`, `a ${b64('x')},,b ${b64('y')}`, `kéy ${b64('x')}`, `a ${b64('x')} extra`]
        for (const metadata of malformed) {
          const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', 'Upload-Metadata': metadata}})
          assert.equal(res.status, 400, metadata)
        }
      })

      it('keeps only a safe file name from the metadata', async () => {
        const url = await createUpload(node.url, 1, {'Upload-Metadata': `filename ${b64('../../etc/pass\u0000wd\u001b[31m')},filetype ${b64('text/html; <script>')}`})
        const row = await node.uploads.findById(idOf(url))
        assert.equal(row?.filename, 'passwd[31m')
        assert.equal(row?.filetype, 'text/html')
        const long = await createUpload(node.url, 1, {'Upload-Metadata': `filename ${b64(`${'a'.repeat(400)}.mp4`)}`})
        const longRow = await node.uploads.findById(idOf(long))
        assert.equal(longRow?.filename?.length, 255)
        assert.ok(longRow?.filename?.endsWith('.mp4'))
      })

      it('completes a zero-length upload at creation', async () => {
        const url = await createUpload(node.url, 0)
        const row = await node.uploads.findById(idOf(url))
        assert.equal(row?.status, 'completed')
        assert.equal(row?.sha256, createHash('sha256').update('').digest('hex'))
      })
    })

    describe('creation-with-upload', () => {
      it('takes the first bytes in the POST and answers with Upload-Offset', async () => {
        const res = await request('POST', `${node.url}/files/`, {headers: {...PATCH_HEADERS, 'Upload-Length': '10'}, body: 'hello'})
        assert.equal(res.status, 201)
        assert.equal(res.headers['upload-offset'], '5')
        const head = await request('HEAD', String(res.headers.location), {headers: TUS})
        assert.equal(head.headers['upload-offset'], '5')
      })

      it('completes an upload sent whole in the POST', async () => {
        const res = await request('POST', `${node.url}/files/`, {headers: {...PATCH_HEADERS, 'Upload-Length': '5'}, body: 'hello'})
        assert.equal(res.status, 201)
        const row = await node.uploads.findById(idOf(String(res.headers.location)))
        assert.equal(row?.status, 'completed')
        assert.equal(row?.md5, createHash('md5').update('hello').digest('hex'))
        assert.equal(res.headers['upload-expires'], undefined)
      })

      it('answers 415 to a creation request whose body has another Content-Type, and creates nothing', async () => {
        const before = (await node.uploads.list({limit: 1000})).length
        for (const contentType of ['text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x']) {
          const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', 'Content-Type': contentType}, body: 'hello'})
          assert.equal(res.status, 415, contentType)
          assert.equal(res.headers.location, undefined)
          assert.match(res.body, /application\/offset\+octet-stream/)
        }
        assert.equal((await node.uploads.list({limit: 1000})).length, before)
        // Without a body, or without a Content-Type, it is a plain creation.
        const empty = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', 'Content-Type': 'application/json', 'Content-Length': '0'}})
        assert.equal(empty.status, 201)
        const untyped = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5'}, body: 'hello'})
        assert.equal(untyped.status, 201)
      })
    })

    describe('creation-defer-length', () => {
      it('reports Upload-Defer-Length until the length is declared in a PATCH, once', async () => {
        const url = await createUpload(node.url, null)
        let head = await request('HEAD', url, {headers: TUS})
        assert.equal(head.headers['upload-defer-length'], '1')
        assert.equal(head.headers['upload-length'], undefined)
        const patch = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0', 'Upload-Length': '6'}, body: 'abc'})
        assert.equal(patch.status, 204)
        head = await request('HEAD', url, {headers: TUS})
        assert.equal(head.headers['upload-length'], '6')
        assert.equal(head.headers['upload-defer-length'], undefined)
        const again = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3', 'Upload-Length': '7'}, body: 'def'})
        assert.equal(again.status, 400)
        const finish = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3'}, body: 'def'})
        assert.equal(finish.status, 204)
        assert.equal((await node.uploads.findById(idOf(url)))?.status, 'completed')
      })

      it('answers 400 to Upload-Defer-Length other than 1', async () => {
        const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Defer-Length': '2'}})
        assert.equal(res.status, 400)
      })
    })

    describe('expiration', () => {
      const rfc7231 = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/

      it('sends Upload-Expires on POST and on every PATCH of an unfinished upload, pushed forward by progress', async () => {
        const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '10'}})
        const created = String(res.headers['upload-expires'])
        assert.match(created, rfc7231)
        const expires = Date.parse(created)
        assert.ok(Math.abs(expires - (Date.now() + 24 * 3600_000)) < 5000)
        await new Promise((r) => setTimeout(r, 1100))
        const patch = await request('PATCH', String(res.headers.location), {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
        assert.match(String(patch.headers['upload-expires']), rfc7231)
        assert.ok(Date.parse(String(patch.headers['upload-expires'])) > expires)
        const last = await request('PATCH', String(res.headers.location), {headers: {...PATCH_HEADERS, 'Upload-Offset': '3'}, body: 'defghij'})
        assert.equal(last.status, 204)
        assert.equal(last.headers['upload-expires'], undefined, 'a finished upload does not expire')
      })

      it('sends Upload-Expires on HEAD of an unfinished upload, and none once it is finished', async () => {
        const url = await createUpload(node.url, 6)
        const patch = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
        const head = await request('HEAD', url, {headers: TUS})
        assert.equal(head.status, 200)
        assert.match(String(head.headers['upload-expires']), rfc7231)
        assert.equal(head.headers['upload-expires'], patch.headers['upload-expires'])
        await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3'}, body: 'def'})
        assert.equal((await request('HEAD', url, {headers: TUS})).headers['upload-expires'], undefined)
        assert.equal((await request('DELETE', url, {headers: TUS})).headers['upload-expires'], undefined)
      })
    })

    describe('termination', () => {
      it('DELETE answers 204, removes the bytes, and the upload is gone afterwards', async () => {
        const url = await createUpload(node.url, 10)
        await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
        const res = await request('DELETE', url, {headers: TUS})
        assert.equal(res.status, 204)
        await assert.rejects(stat(path.join(node.dataDir, 'uploads', idOf(url))), {code: 'ENOENT'})
        const head = await request('HEAD', url, {headers: TUS})
        assert.ok(head.status === 404 || head.status === 410)
        const patch = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3'}, body: 'def'})
        assert.ok(patch.status === 404 || patch.status === 410)
        assert.equal((await node.uploads.findById(idOf(url)))?.status, 'terminated')
        assert.equal((await request('DELETE', url, {headers: TUS})).status, 410, 'a DELETE again finds it gone')
      })

      it('DELETE of an unknown upload answers 404', async () => {
        assert.equal((await request('DELETE', `${node.url}/files/nope`, {headers: TUS})).status, 404)
      })
    })

    describe('method override', () => {
      it('treats POST with X-HTTP-Method-Override: PATCH as a PATCH', async () => {
        const url = await createUpload(node.url, 3)
        const res = await request('POST', url, {headers: {...PATCH_HEADERS, 'X-HTTP-Method-Override': 'PATCH', 'Upload-Offset': '0'}, body: 'abc'})
        assert.equal(res.status, 204)
        assert.equal(res.headers['upload-offset'], '3')
      })
    })
  })
}
