/**
 * creation-with-upload: a creation whose body fails (wrong Upload-Checksum, more bytes than
 * Upload-Length, a client gone mid-body) gave the client no Location, so it leaves nothing
 * behind: no row, no file, nothing counted against the caller's limits.
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readdir} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {PATCH_HEADERS, request} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'

const checksum = (algorithm: string, data: string) => `${algorithm} ${createHash(algorithm).update(data).digest('base64')}`

describe('a creation-with-upload whose body fails', {timeout: 60_000}, () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode('postgres')
  })
  after(() => node?.stop())

  const rows = async () => Number(((await node.db.query('SELECT count(*)::int AS n FROM uploads')) as Array<{n: number}>)[0]!.n)
  const files = async () => (await readdir(path.join(node.dataDir, 'uploads')).catch(() => [])).filter((name) => !name.startsWith('.')).length

  async function eventually(what: string, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 5000
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  it('leaves no row and no file after a wrong Upload-Checksum (460)', async () => {
    const [rowsBefore, filesBefore] = [await rows(), await files()]
    const bad = await request('POST', `${node.url}/files/`, {headers: {...PATCH_HEADERS, 'Upload-Length': '5', 'Upload-Checksum': checksum('sha256', 'nope!')}, body: 'hello'})
    assert.equal(bad.status, 460, bad.body)
    assert.equal(bad.headers.location, undefined)
    assert.equal(await rows(), rowsBefore, 'no row')
    assert.equal(await files(), filesBefore, 'no file')
  })

  it('leaves no row and no file after a body longer than Upload-Length (413)', async () => {
    const [rowsBefore, filesBefore] = [await rows(), await files()]
    const long = await request('POST', `${node.url}/files/`, {headers: {...PATCH_HEADERS, 'Upload-Length': '5'}, body: 'hello, and then some'})
    assert.equal(long.status, 413, long.body)
    assert.equal(await rows(), rowsBefore, 'no row')
    assert.equal(await files(), filesBefore, 'no file')
  })

  it('leaves no row and no file when the client goes away mid-body', async () => {
    const [rowsBefore, filesBefore] = [await rows(), await files()]
    const {hostname, port} = new URL(node.url)
    const req = http.request({host: hostname, port, path: '/files/', method: 'POST', headers: {...PATCH_HEADERS, 'Upload-Length': '1000000', 'Content-Length': '1000000'}})
    req.on('error', () => {})
    req.write(Buffer.alloc(64 * 1024, 1))
    await eventually('the creation to reach the store', async () => (await rows()) > rowsBefore)
    req.destroy()
    await eventually('the row to go', async () => (await rows()) === rowsBefore)
    await eventually('the file to go', async () => (await files()) === filesBefore)
  })

  it('keeps a creation-with-upload that succeeds, and a plain creation', async () => {
    const rowsBefore = await rows()
    const good = await request('POST', `${node.url}/files/`, {headers: {...PATCH_HEADERS, 'Upload-Length': '10', 'Upload-Checksum': checksum('sha256', 'hello')}, body: 'hello'})
    assert.equal(good.status, 201)
    assert.equal(good.headers['upload-offset'], '5')
    const plain = await request('POST', `${node.url}/files/`, {headers: {'Tus-Resumable': '1.0.0', 'Upload-Length': '10'}})
    assert.equal(plain.status, 201)
    assert.equal(await rows(), rowsBefore + 2)
  })
})
