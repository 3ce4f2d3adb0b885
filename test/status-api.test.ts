/** The status API, health endpoints, Location behind a proxy, and CORS for browser uploaders. */
import assert from 'node:assert/strict'
import {rename, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, request, TUS} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

describe('status API and health', () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode('postgres')
  })
  after(() => node.stop())

  it('shows one upload as JSON', async () => {
    const url = await createUpload(node.url, 10, {'Upload-Metadata': `filename ${Buffer.from('a.mp4').toString('base64')}`})
    await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abcd'})
    const id = new URL(url).pathname.split('/').pop()!
    const res = await fetch(`${node.url}/api/uploads/${id}`)
    assert.equal(res.status, 200)
    assert.match(String(res.headers.get('content-type')), /application\/json/)
    const body = (await res.json()) as Record<string, unknown>
    assert.equal(body.id, id)
    assert.equal(body.status, 'uploading')
    assert.equal(body.filename, 'a.mp4')
    assert.equal(body.size, 10)
    assert.equal(body.offset, 4)
    assert.equal(body.sha256, null)
    for (const key of ['filetype', 'md5', 'createdAt', 'updatedAt', 'completedAt']) assert.ok(key in body, key)
  })

  it('answers 404 with a JSON error for an unknown upload, whatever bytes its id has', async () => {
    const res = await fetch(`${node.url}/api/uploads/nope`)
    assert.equal(res.status, 404)
    assert.match(((await res.json()) as {error: string}).error, /not found/)
    for (const id of ['%00', 'a%00b.mp4', 'x'.repeat(300)]) {
      assert.equal((await fetch(`${node.url}/api/uploads/${id}`)).status, 404, id)
      assert.equal((await request('HEAD', `${node.url}/files/${id}`, {headers: TUS})).status, 404, id)
    }
  })

  it('lists uploads newest first, filtered by status, in pages', async () => {
    const created: string[] = []
    for (let i = 0; i < 5; i++) created.push(new URL(await createUpload(node.url, i === 0 ? 0 : 10)).pathname.split('/').pop()!)
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const res: Response = await fetch(`${node.url}/api/uploads?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      assert.equal(res.status, 200)
      const page = (await res.json()) as {uploads: Array<{id: string}>; nextCursor: string | null}
      assert.ok(page.uploads.length <= 2)
      seen.push(...page.uploads.map((u) => u.id))
      cursor = page.nextCursor
    } while (cursor)
    assert.equal(new Set(seen).size, seen.length, 'no upload twice across pages')
    assert.deepEqual(seen.slice(0, 5), [...created].reverse())
    const completed = (await (await fetch(`${node.url}/api/uploads?status=completed`)).json()) as {uploads: Array<{id: string; status: string}>}
    assert.ok(completed.uploads.some((u) => u.id === created[0]))
    assert.ok(completed.uploads.every((u) => u.status === 'completed'))
  })

  it('answers 400 to bad list parameters, with the parameter named', async () => {
    for (const [query, name] of [['limit=0', 'limit'], ['limit=abc', 'limit'], ['limit=1000', 'limit'], ['status=flying', 'status'], ['cursor=garbage', 'cursor']]) {
      const res = await fetch(`${node.url}/api/uploads?${query}`)
      assert.equal(res.status, 400, query)
      assert.match(((await res.json()) as {error: string}).error, new RegExp(name!))
    }
  })

  it('reports alive on /healthz and ready on /readyz, and not ready when storage is not writable', async () => {
    assert.equal((await fetch(`${node.url}/healthz`)).status, 200)
    const ready = await fetch(`${node.url}/readyz`)
    assert.equal(ready.status, 200)
    assert.deepEqual(((await ready.json()) as {checks: unknown}).checks, {database: 'ok', storage: 'ok'})
    // A file where the storage directory should be: unwritable even for root.
    const dir = path.join(node.dataDir, 'uploads')
    await rename(dir, `${dir}.moved`)
    await writeFile(dir, '')
    try {
      const res = await fetch(`${node.url}/readyz`)
      assert.equal(res.status, 503)
      const body = (await res.json()) as {checks: {database: string; storage: string}}
      assert.equal(body.checks.database, 'ok')
      assert.notEqual(body.checks.storage, 'ok')
    } finally {
      await rm(dir)
      await rename(`${dir}.moved`, dir)
    }
  })
})

describe('behind a proxy', () => {
  it('builds Location from PUBLIC_URL', async () => {
    const node = await startTestNode('postgres', {publicUrl: 'https://uploads.example.com/'})
    try {
      const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5'}})
      assert.match(String(res.headers.location), /^https:\/\/uploads\.example\.com\/files\/[a-z0-9]+$/)
    } finally {
      await node.stop()
    }
  })

  it('uses X-Forwarded-Proto/Host only when told to trust them', async () => {
    const trusting = await startTestNode('postgres', {trustProxy: true})
    const wary = await startTestNode('postgres')
    try {
      const forwarded = {...TUS, 'Upload-Length': '5', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'lb.example.com'}
      const a = await request('POST', `${trusting.url}/files/`, {headers: forwarded})
      assert.match(String(a.headers.location), /^https:\/\/lb\.example\.com\/files\//)
      const b = await request('POST', `${wary.url}/files/`, {headers: forwarded})
      assert.ok(String(b.headers.location).startsWith(`${wary.url}/files/`))
    } finally {
      await trusting.stop()
      await wary.stop()
    }
  })
})

describe('CORS', () => {
  it('lets a browser on another origin upload and read the tus headers', async () => {
    const node = await startTestNode('postgres', {corsOrigins: 'https://app.example.com'})
    try {
      const preflight = await request('OPTIONS', `${node.url}/files/`, {
        headers: {Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'tus-resumable,upload-length,upload-metadata'},
      })
      assert.ok(preflight.status === 204 || preflight.status === 200)
      assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com')
      assert.match(String(preflight.headers['access-control-allow-methods']), /PATCH/)
      assert.match(String(preflight.headers['access-control-allow-headers']).toLowerCase(), /upload-length/)
      const created = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', Origin: 'https://app.example.com'}})
      assert.equal(created.headers['access-control-allow-origin'], 'https://app.example.com')
      const exposed = String(created.headers['access-control-expose-headers']).toLowerCase()
      for (const header of ['location', 'upload-offset', 'upload-length', 'tus-resumable', 'upload-expires']) assert.ok(exposed.includes(header), header)
      const other = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', Origin: 'https://evil.example.com'}})
      assert.notEqual(other.headers['access-control-allow-origin'], 'https://evil.example.com')
    } finally {
      await node.stop()
    }
  })
})
