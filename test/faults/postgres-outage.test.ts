/**
 * PostgreSQL going away in the middle of an upload, and coming back.
 *
 * The database is reached through a TCP proxy that the test cuts (every connection dropped, the
 * port refusing new ones) and restores, rather than by restarting the machine's PostgreSQL:
 * that server is shared with every other test and engineer on this machine, and a restart
 * would fail their work at random. From the node's side the two look the same (connections
 * reset, then refused); what the proxy cannot show is PostgreSQL's own crash recovery.
 *
 * The node runs as its own process, so a pool error that escaped would show as an exit.
 */
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, rm, stat} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, request, TUS} from '../support/http.js'
import {freshSchema} from '../support/node.js'
import {spawnNode, type NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'
import {pause, startCuttableProxy, streamingPatch, type CuttableProxy} from './support.js'

describe('PostgreSQL outage mid-upload', {timeout: 120_000}, () => {
  let dir: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let proxy: CuttableProxy
  let node: NodeProcess
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fault-pg-'))
    schema = await freshSchema()
    const target = new URL(TEST_DATABASE_URL)
    proxy = await startCuttableProxy(target.hostname, Number(target.port || 5432))
    const viaProxy = new URL(TEST_DATABASE_URL)
    viaProxy.port = String(proxy.port)
    node = await spawnNode({DATA_DIR: dir, DATABASE_URL: viaProxy.toString(), DATABASE_SCHEMA: schema.schema})
  })
  after(async () => {
    await node?.kill('SIGKILL')
    await proxy?.close()
    await schema?.drop()
    await rm(dir, {recursive: true, force: true})
  })

  it('answers 503 with Retry-After while the database is down, then the upload completes with nothing lost', async (t) => {
    // Answers from the tus endpoint that lack Retry-After (checked in a subtest below).
    const tusWithoutRetryAfter: string[] = []
    const size = 3 << 20
    const data = randomBytes(size)
    const url = await createUpload(node.url, size)
    const first = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: data.subarray(0, 1 << 20)})
    assert.equal(first.status, 204)

    // Cut in the middle of a PATCH body: the bytes reach the disk, their record cannot.
    const patch = streamingPatch(url, 1 << 20, {'Content-Length': String(1 << 20)})
    await patch.write(data.subarray(1 << 20, (1 << 20) + (512 << 10)))
    await pause(200)
    await proxy.cut()
    try {
      await patch.write(data.subarray((1 << 20) + (512 << 10), 2 << 20))
      patch.end()
      const cutPatch = await patch.response
      assert.ok(!(cutPatch instanceof Error), `the cut PATCH got an answer: ${cutPatch}`)
      assert.equal(cutPatch.status, 503, cutPatch.body)
      assert.match(cutPatch.body, /database is unavailable/)
      if (!cutPatch.headers['retry-after']) tusWithoutRetryAfter.push('PATCH cut mid-body')

      const answers = {
        head: await request('HEAD', url, {headers: TUS}),
        patch: await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': 1 << 20}, body: data.subarray(1 << 20, 2 << 20)}),
        create: await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': 10}}),
        status: await request('GET', `${node.url}/api/uploads/${url.split('/').pop()}`),
      }
      for (const [what, res] of Object.entries(answers)) {
        assert.equal(res.status, 503, `${what} while the database is down: ${res.status} ${res.body}`)
        if (what === 'status') assert.ok(res.headers['retry-after'], `${what}: Retry-After`)
        else if (!res.headers['retry-after']) tusWithoutRetryAfter.push(what)
        if (what !== 'head') assert.match(res.body, /database is unavailable/, `${what}: a message saying why`)
      }
      assert.equal((await request('GET', `${node.url}/readyz`)).status, 503, 'not ready')
      assert.equal((await request('GET', `${node.url}/healthz`)).status, 200, 'but alive')
    } finally {
      await proxy.restore()
    }

    // The pool reconnects on its own.
    const deadline = Date.now() + 20_000
    let head = await request('HEAD', url, {headers: TUS})
    while (head.status !== 200 && Date.now() < deadline) {
      await pause(250)
      head = await request('HEAD', url, {headers: TUS})
    }
    assert.equal(head.status, 200, `HEAD after the database came back: ${head.status}`)
    assert.equal((await request('GET', `${node.url}/readyz`)).status, 200)
    const offset = Number(head.headers['upload-offset'])
    assert.ok(offset >= 1 << 20 && offset <= 2 << 20, `resumes at ${offset}, at least the acknowledged bytes`)
    const rest = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': offset}, body: data.subarray(offset)})
    assert.equal(rest.status, 204, rest.body)

    const id = url.split('/').pop()!
    const status = (await (await fetch(`${node.url}/api/uploads/${id}`)).json()) as Record<string, unknown>
    assert.equal(status.status, 'completed')
    assert.equal(status.sha256, createHash('sha256').update(data).digest('hex'))
    assert.equal((await stat(path.join(dir, 'uploads', id))).size, size)
    assert.equal(node.child.exitCode, null, `the node is still running:\n${node.output().slice(-2000)}`)

    await t.test('the tus endpoint\'s 503s carry Retry-After too', () => {
      assert.deepEqual(tusWithoutRetryAfter, [])
    })
  })

  it('every step of the tus path answers 503 with Retry-After while the database is down (creation with a body, checksummed and last PATCHes, concatenation, completion), and keeps every acknowledged byte', async () => {
    const size = 2 << 20
    const data = randomBytes(size)
    const sha1 = (bytes: Buffer) => `sha1 ${createHash('sha1').update(bytes).digest('base64')}`
    // One upload acknowledged up to 1 MiB, whose last PATCH (completion) is cut mid-body.
    const last = await createUpload(node.url, size)
    assert.equal((await request('PATCH', last, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: data.subarray(0, 1 << 20)})).status, 204)
    // One whose checksummed PATCH is cut mid-body.
    const checked = await createUpload(node.url, size)
    // A partial upload (tus concatenation) cut mid-body.
    const partial = await createUpload(node.url, size, {'Upload-Concat': 'partial'})
    const cutPatches = {
      last: streamingPatch(last, 1 << 20, {'Content-Length': String(1 << 20)}),
      checksummed: streamingPatch(checked, 0, {'Content-Length': String(1 << 20), 'Upload-Checksum': sha1(data.subarray(0, 1 << 20))}),
      partial: streamingPatch(partial, 0, {'Content-Length': String(1 << 20)}),
    }
    const from = {last: 1 << 20, checksummed: 0, partial: 0}
    for (const [what, patch] of Object.entries(cutPatches)) await patch.write(data.subarray(from[what as keyof typeof from], from[what as keyof typeof from] + (512 << 10)))
    await pause(200)
    await proxy.cut()
    const refused: Record<string, {status: number; retryAfter: unknown; body: string}> = {}
    try {
      for (const [what, patch] of Object.entries(cutPatches)) {
        const start = from[what as keyof typeof from] + (512 << 10)
        await patch.write(data.subarray(start, start + (512 << 10)))
        patch.end()
      }
      for (const [what, patch] of Object.entries(cutPatches)) {
        const res = await patch.response
        assert.ok(!(res instanceof Error), `${what}: an answer (${res})`)
        refused[`${what} PATCH cut mid-body`] = {status: res.status, retryAfter: res.headers['retry-after'], body: res.body}
      }
      const answers = {
        'creation with a body': await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': 4, 'Content-Type': 'application/offset+octet-stream'}, body: 'abcd'}),
        'creation of a partial': await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': 4, 'Upload-Concat': 'partial'}}),
        'creation of a final': await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Concat': `final;${new URL(partial).pathname}`}}),
        'HEAD of a partial': await request('HEAD', partial, {headers: TUS}),
        'last PATCH': await request('PATCH', last, {headers: {...PATCH_HEADERS, 'Upload-Offset': 1 << 20}, body: data.subarray(1 << 20)}),
        'checksummed PATCH': await request('PATCH', checked, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0, 'Upload-Checksum': sha1(data.subarray(0, 1 << 20))}, body: data.subarray(0, 1 << 20)}),
        'DELETE': await request('DELETE', checked, {headers: TUS}),
      }
      for (const [what, res] of Object.entries(answers)) refused[what] = {status: res.status, retryAfter: res.headers['retry-after'], body: res.body}
    } finally {
      await proxy.restore()
    }
    for (const [what, answer] of Object.entries(refused)) {
      assert.equal(answer.status, 503, `${what} while the database is down: ${answer.status} ${answer.body}`)
      assert.ok(Number(answer.retryAfter) > 0, `${what}: Retry-After`)
      if (!what.startsWith('HEAD')) assert.match(answer.body, /database is unavailable/, `${what}: a message saying why`)
    }

    // Back: each upload resumes at least where it was acknowledged, and completes whole.
    const deadline = Date.now() + 20_000
    const headOf = async (url: string) => {
      let head = await request('HEAD', url, {headers: TUS})
      while (head.status !== 200 && Date.now() < deadline) {
        await pause(250)
        head = await request('HEAD', url, {headers: TUS})
      }
      assert.equal(head.status, 200, `HEAD after the database came back: ${head.status}`)
      return Number(head.headers['upload-offset'])
    }
    for (const [url, acknowledged] of [[last, 1 << 20], [checked, 0], [partial, 0]] as const) {
      const offset = await headOf(url)
      assert.ok(offset >= acknowledged && offset <= size, `resumes at ${offset}, at least the acknowledged ${acknowledged}`)
      if (offset < size) {
        const rest = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': offset}, body: data.subarray(offset)})
        assert.equal(rest.status, 204, rest.body)
      }
      const id = url.split('/').pop()!
      // A cut last PATCH can leave every byte on disk: the HEAD that found them completed it.
      const status = (await (await fetch(`${node.url}/api/uploads/${id}`)).json()) as Record<string, unknown>
      assert.equal(status.status, 'completed', `${id}: ${JSON.stringify(status)}`)
      assert.equal(status.sha256, createHash('sha256').update(data).digest('hex'))
      assert.equal((await stat(path.join(dir, 'uploads', id))).size, size)
    }
    assert.equal(node.child.exitCode, null, `the node is still running:\n${node.output().slice(-2000)}`)
  })
})
