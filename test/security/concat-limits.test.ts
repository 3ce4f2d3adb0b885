/**
 * MAX_UPLOAD_SIZE holds for tus concatenation (issue 14, point 5): a final upload is the sum of
 * its partials, so two deferred-length partials of 700 kB must not assemble 1.4 MB on a node
 * with a 1 MB limit, whether the lengths arrive before the final is created, after it, or while
 * both partials are still receiving in parallel; and one final lists a bounded number of them.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import http from 'node:http'
import {after, before, describe, it} from 'node:test'
import {PATCH_HEADERS, request, TUS} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'

const LIMIT = 1_000_000
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
const idOf = (url: string) => new URL(url).pathname.split('/').pop()!

/**
 * A PATCH whose body goes out chunked, 50 kB at a time (no Content-Length to refuse up front),
 * until the server answers: a 413 mid-body closes the connection, and the answer must not be
 * lost to the write that follows it.
 */
function streamed(url: string, offset: number, body: Buffer, options: {pauseMs?: number} = {}): Promise<{status: number; body: string}> {
  return new Promise((resolve) => {
    let answered = false
    const req = http.request(url, {method: 'PATCH', headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset), 'Transfer-Encoding': 'chunked'}}, (res) => {
      answered = true
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      const done = () => resolve({status: res.statusCode ?? 0, body: text})
      res.on('end', done).on('close', done).on('error', done)
    })
    req.on('error', (error) => {
      if (!answered) resolve({status: -1, body: String(error)})
    })
    void (async () => {
      for (let sent = 0; sent < body.length && !answered && !req.destroyed; sent += 50_000) {
        req.write(body.subarray(sent, sent + 50_000))
        await pause(options.pauseMs ?? 10)
      }
      if (!answered && !req.destroyed) req.end()
    })()
  })
}

describe('MAX_UPLOAD_SIZE and concatenation (postgres database)', () => {
  let node: TestNode
  before(async () => {
    // A short expiry makes checkpoints frequent (every 500 ms), so parallel partials see each other soon.
    node = await startTestNode('postgres', {maxUploadSize: LIMIT, maxConcatParts: 3, uploadExpiry: '2s'})
  })
  after(() => node.stop())

  async function partial(length: number | null): Promise<string> {
    const headers: Record<string, string> = {...TUS, 'Upload-Concat': 'partial', ...(length === null ? {'Upload-Defer-Length': '1'} : {'Upload-Length': String(length)})}
    const res = await request('POST', `${node.url}/files/`, {headers})
    assert.equal(res.status, 201, res.body)
    return new URL(String(res.headers.location), node.url).toString()
  }
  const finalOf = (parts: string[]) =>
    request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Concat': `final;${parts.map((p) => new URL(p).pathname).join(' ')}`}})
  const patch = (url: string, offset: number, body: Buffer, extra: Record<string, string> = {}) =>
    request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset), ...extra}, body})
  const finalId = (res: {headers: http.IncomingHttpHeaders}) => idOf(new URL(String(res.headers.location), node.url).toString())

  it('two deferred-length partials of 700 kB declared after the final was created: the second is refused (413) and the final fails', async () => {
    const [a, b] = [await partial(null), await partial(null)]
    const final = await finalOf([a, b])
    assert.equal(final.status, 201, final.body)
    const first = await patch(a, 0, randomBytes(700_000), {'Upload-Length': '700000'})
    assert.equal(first.status, 204, first.body)
    const second = await patch(b, 0, randomBytes(700_000), {'Upload-Length': '700000'})
    assert.equal(second.status, 413, second.body)
    assert.match(second.body, /would add up to more than the maximum upload size/)
    const row = await node.uploads.findById(finalId(final))
    assert.equal(row?.status, 'failed')
    assert.match(row?.failureReason ?? '', /maximum upload size/)
  })

  it('a deferred-length partial sending bytes past what its final leaves it is cut at the limit (413), keeping what fit', async () => {
    const [a, b] = [await partial(700_000), await partial(null)]
    const final = await finalOf([a, b])
    assert.equal(final.status, 201, final.body)
    assert.equal((await patch(a, 0, randomBytes(700_000))).status, 204)
    const res = await streamed(b, 0, randomBytes(400_000))
    assert.equal(res.status, 413, res.body)
    const offset = Number((await request('HEAD', b, {headers: TUS})).headers['upload-offset'])
    assert.ok(offset <= 300_000, `the partial kept ${offset} bytes, no more than the 300 kB left`)
    assert.equal((await node.uploads.findById(finalId(final)))?.status, 'failed')
  })

  it('two partials receiving in parallel after the final was created: one is refused once together they pass the limit, and nothing over it is assembled', async () => {
    const [a, b] = [await partial(null), await partial(null)]
    const final = await finalOf([a, b])
    assert.equal(final.status, 201, final.body)
    const statuses = (await Promise.all([a, b].map((url) => streamed(url, 0, randomBytes(700_000), {pauseMs: 200})))).map((r) => r.status)
    assert.ok(statuses.includes(413), `statuses ${statuses.join(', ')}`)
    const row = await node.uploads.findById(finalId(final))
    assert.equal(row?.status, 'failed')
    assert.equal(row?.sha256, null)
  })

  it('a final created while its two partials are receiving: one of them is refused once together they pass the limit', async () => {
    const [a, b] = [await partial(null), await partial(null)]
    const streams = [a, b].map((url) => streamed(url, 0, randomBytes(700_000), {pauseMs: 200}))
    await pause(600)
    const final = await finalOf([a, b])
    assert.equal(final.status, 201, final.body)
    const statuses = (await Promise.all(streams)).map((r) => r.status)
    assert.ok(statuses.includes(413), `statuses ${statuses.join(', ')}`)
    assert.equal((await node.uploads.findById(finalId(final)))?.status, 'failed')
  })

  it('refuses a final whose partials already hold, or declare, more than the limit (413)', async () => {
    const [a, b] = [await partial(null), await partial(null)]
    assert.equal((await patch(a, 0, randomBytes(600_000))).status, 204)
    assert.equal((await patch(b, 0, randomBytes(600_000))).status, 204)
    const held = await finalOf([a, b])
    assert.equal(held.status, 413, held.body)
    assert.match(held.body, /already hold 1200000 bytes/)

    const declared = await finalOf([await partial(700_000), await partial(700_000)])
    assert.equal(declared.status, 413, declared.body)
  })

  it('a final lists at most MAX_CONCAT_PARTS partial uploads', async () => {
    const parts = [await partial(1), await partial(1), await partial(1), await partial(1)]
    const res = await finalOf(parts)
    assert.equal(res.status, 400, res.body)
    assert.match(res.body, /lists 4 partial uploads; this server takes at most 3/)
    assert.equal((await finalOf(parts.slice(0, 3))).status, 201)
  })

  it('a deferred-length partial on its own is refused past MAX_UPLOAD_SIZE (413), keeping what fit', async () => {
    const a = await partial(null)
    const res = await streamed(a, 0, randomBytes(LIMIT + 200_000))
    assert.equal(res.status, 413, res.body)
    const offset = Number((await request('HEAD', a, {headers: TUS})).headers['upload-offset'])
    assert.ok(offset <= LIMIT, `kept ${offset} bytes`)
  })
})
