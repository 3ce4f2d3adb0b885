/** tus concatenation and concatenation-unfinished, rule by rule, and tus-js-client's parallel uploads. */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {access, mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import * as tus from 'tus-js-client'
import {OutboxEventEntity} from '../src/db/entities/outbox-event.js'
import {referenceDigests, writeRandomFile} from './support/files.js'
import {createUpload, PATCH_HEADERS, request, TUS} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

const idOf = (url: string) => new URL(url).pathname.split('/').pop()!
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('tus concatenation', () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode('postgres', {maxUploadSize: '64MiB'})
  })
  after(() => node.stop())

  const partial = async (data: string | null, length = data?.length ?? 0) => {
    const url = await createUpload(node.url, length, {'Upload-Concat': 'partial'})
    if (data) {
      const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: data})
      assert.equal(res.status, 204)
    }
    return url
  }
  const final = (urls: string[], extra: Record<string, string> = {}) =>
    request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Concat': `final;${urls.join(' ')}`, ...extra}})
  const eventsFor = (id: string) => node.db.getRepository(OutboxEventEntity).findBy({uploadId: id})
  async function waitForStatus(id: string, status: string) {
    for (let i = 0; i < 100; i++) {
      if ((await node.uploads.findById(id))?.status === status) return
      await pause(50)
    }
    assert.fail(`upload ${id} never became ${status}`)
  }

  it('advertises concatenation and concatenation-unfinished', async () => {
    const extensions = String((await request('OPTIONS', `${node.url}/files/`)).headers['tus-extension']).split(',')
    assert.ok(extensions.includes('concatenation'))
    assert.ok(extensions.includes('concatenation-unfinished'))
  })

  it('creates partial uploads that show Upload-Concat: partial, and announces none of them', async () => {
    const url = await partial('abc')
    const head = await request('HEAD', url, {headers: TUS})
    assert.equal(head.status, 200)
    assert.equal(head.headers['upload-concat'], 'partial')
    assert.equal(head.headers['upload-offset'], '3')
    const row = await node.uploads.findById(idOf(url))
    assert.equal(row?.status, 'completed')
    assert.equal(row?.uploadConcat, 'partial')
    assert.equal((await eventsFor(idOf(url))).length, 0, 'a partial upload is not announced')
    const list = (await (await fetch(`${node.url}/api/uploads?limit=200`)).json()) as {uploads: Array<{id: string}>}
    assert.ok(!list.uploads.some((u) => u.id === idOf(url)), 'partials are not listed as uploads')
  })

  it('concatenates finished partials, in order, into a final upload announced once', async () => {
    const parts = [await partial('hello '), await partial('tus '), await partial('world')]
    // Absolute and relative URLs both name a partial upload.
    const urls = [parts[0]!, new URL(parts[1]!).pathname, parts[2]!]
    const res = await final(urls, {'Upload-Metadata': `filename ${Buffer.from('joined.mp4').toString('base64')}`})
    assert.equal(res.status, 201)
    const url = new URL(String(res.headers.location), node.url).toString()
    const id = idOf(url)
    await waitForStatus(id, 'completed')

    const head = await request('HEAD', url, {headers: TUS})
    assert.equal(head.status, 200)
    assert.equal(head.headers['upload-length'], '15')
    assert.equal(head.headers['upload-offset'], '15')
    assert.equal(head.headers['upload-concat'], `final;${urls.join(' ')}`, 'echoed as received')
    assert.equal(await readFile(path.join(node.dataDir, 'uploads', id), 'utf8'), 'hello tus world')
    const row = await node.uploads.findById(id)
    assert.equal(row?.sha256, createHash('sha256').update('hello tus world').digest('hex'))
    assert.equal(row?.filename, 'joined.mp4')
    assert.equal((await eventsFor(id)).length, 1)
    for (const p of parts) {
      await assert.rejects(access(path.join(node.dataDir, 'uploads', idOf(p))), 'consumed partial files are removed')
      assert.equal((await eventsFor(idOf(p))).length, 0)
    }
  })

  it('accepts a final upload before its partials finish, and completes it when they do', async () => {
    const a = await partial('12345', 10)
    const b = await partial(null, 5)
    const res = await final([a, b])
    assert.equal(res.status, 201)
    const url = new URL(String(res.headers.location), node.url).toString()
    let head = await request('HEAD', url, {headers: TUS})
    assert.equal(head.headers['upload-length'], '15')
    assert.equal(head.headers['upload-offset'], '5', 'the received prefix of the first partial')
    assert.equal((await node.uploads.findById(idOf(url)))?.status, 'uploading')

    // The second partial's bytes do not count while the first is unfinished: the offset is a prefix.
    await request('PATCH', b, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'vwxyz'})
    assert.equal((await request('HEAD', url, {headers: TUS})).headers['upload-offset'], '5')
    await request('PATCH', a, {headers: {...PATCH_HEADERS, 'Upload-Offset': '5'}, body: '67890'})
    // All partials finished: the concatenation is done as far as the protocol goes, even while the bytes are copied.
    head = await request('HEAD', url, {headers: TUS})
    assert.equal(head.headers['upload-offset'], '15')
    assert.equal(head.headers['upload-length'], '15')
    await waitForStatus(idOf(url), 'completed')
    head = await request('HEAD', url, {headers: TUS})
    assert.equal(head.headers['upload-offset'], '15')
    assert.equal(await readFile(path.join(node.dataDir, 'uploads', idOf(url)), 'utf8'), '1234567890vwxyz')
    assert.equal((await eventsFor(idOf(url))).length, 1)
  })

  it('answers HEAD on a final upload with Upload-Offset equal to Upload-Length right after creating it from finished partials', async () => {
    const parts = [await partial('a'.repeat(200_000)), await partial('b'.repeat(300_000))]
    const res = await final(parts)
    assert.equal(res.status, 201)
    const head = await request('HEAD', new URL(String(res.headers.location), node.url).toString(), {headers: TUS})
    assert.equal(head.status, 200)
    assert.equal(head.headers['upload-length'], '500000')
    assert.equal(head.headers['upload-offset'], '500000')
  })

  it('leaves Upload-Length out of a final upload until every partial length is known', async () => {
    const a = await partial('abc')
    const deferred = await createUpload(node.url, null, {'Upload-Concat': 'partial'})
    const res = await final([a, deferred])
    const url = new URL(String(res.headers.location), node.url).toString()
    let head = await request('HEAD', url, {headers: TUS})
    assert.equal(head.headers['upload-length'], undefined)
    assert.equal(head.headers['upload-offset'], '3')
    await request('PATCH', deferred, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0', 'Upload-Length': '4'}, body: 'de'})
    head = await request('HEAD', url, {headers: TUS})
    assert.equal(head.headers['upload-length'], '7')
    assert.equal(head.headers['upload-offset'], '5')
  })

  it('answers 403 to a PATCH on a final upload and changes nothing', async () => {
    const res = await final([await partial('ab'), await partial('cd')])
    const url = new URL(String(res.headers.location), node.url).toString()
    await waitForStatus(idOf(url), 'completed')
    const patch = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '4'}, body: 'ef'})
    assert.equal(patch.status, 403)
    assert.equal(await readFile(path.join(node.dataDir, 'uploads', idOf(url)), 'utf8'), 'abcd')
  })

  it('refuses a final upload with Upload-Length, bad URLs, unknown or non-partial uploads (400)', async () => {
    const good = await partial('x')
    const plain = await createUpload(node.url, 1)
    const cases: Array<[string[], Record<string, string>]> = [
      [[good], {'Upload-Length': '1'}],
      [[], {}],
      [['http://[bad'], {}],
      [[`${node.url}/elsewhere/abc`], {}],
      [[`${node.url}/files/doesnotexist`], {}],
      [[plain], {}],
    ]
    for (const [urls, extra] of cases) {
      const res = await final(urls, extra)
      assert.equal(res.status, 400, `${urls.join(' ')} ${JSON.stringify(extra)}: ${res.body}`)
      assert.ok(res.body.length > 0)
    }
    assert.equal((await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Concat': 'whole', 'Upload-Length': '1'}})).status, 400)
  })

  it('answers 413 when the partials add up to more than Tus-Max-Size', async () => {
    const big = await createUpload(node.url, 40 * 1024 * 1024, {'Upload-Concat': 'partial'})
    const res = await final([big, big])
    assert.equal(res.status, 413)
  })

  it('terminates a final upload with DELETE', async () => {
    const res = await final([await partial(null, 3)])
    const url = new URL(String(res.headers.location), node.url).toString()
    assert.equal((await request('DELETE', url, {headers: TUS})).status, 204)
    assert.equal((await request('HEAD', url, {headers: TUS})).status, 410)
  })

  it('uploads a file end to end with tus-js-client parallelUploads: 4', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parallel-'))
    try {
      const file = path.join(dir, 'video.bin')
      const size = 5 * 1024 * 1024 + 7
      await writeRandomFile(file, size)
      const url = await new Promise<string>((resolve, reject) => {
        const upload = new tus.Upload(createReadStream(file) as never, {
          endpoint: `${node.url}/files/`,
          parallelUploads: 4,
          chunkSize: 512 * 1024,
          metadata: {filename: 'video.bin'},
          onSuccess: () => resolve(upload.url!),
          onError: reject,
        })
        upload.start()
      })
      await waitForStatus(idOf(url), 'completed')
      const row = await node.uploads.findById(idOf(url))
      assert.equal(row?.sha256, referenceDigests(file).sha256)
      assert.equal(row?.size, size)
      assert.equal(row?.concatParts?.length, 4)
      assert.equal((await eventsFor(idOf(url))).length, 1)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})

