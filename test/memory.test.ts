/**
 * Memory must not grow with file size: a 1 GiB upload in 8 MiB chunks keeps the node's peak
 * RSS under 200 MB (the node streams to disk and hashes as it goes; nothing is buffered whole).
 */
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import http from 'node:http'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload} from './support/http.js'
import {freshSchema} from './support/node.js'
import {spawnNode, type NodeProcess} from './support/process-node.js'
import {TEST_DATABASE_URL} from './support/services.js'

const GiB = 1024 ** 3
const CHUNK = 8 * 1024 * 1024

function patch(url: string, offset: number, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'PATCH',
      headers: {'Tus-Resumable': '1.0.0', 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(offset), 'Content-Length': body.length},
    })
    req.on('response', (res) => {
      res.resume()
      if (res.statusCode !== 204) return reject(new Error(`PATCH at ${offset}: ${res.statusCode}`))
      resolve(Number(res.headers['upload-offset']))
    })
    req.on('error', reject)
    // Sent in 256 KiB writes, as a client streaming from disk would.
    for (let i = 0; i < body.length; i += 256 * 1024) req.write(body.subarray(i, i + 256 * 1024))
    req.end()
  })
}

describe('memory', () => {
  let node: NodeProcess
  let dataDir: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'memory-'))
    schema = await freshSchema()
    node = await spawnNode({DATA_DIR: dataDir, DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema.schema, MAX_UPLOAD_SIZE: '2GiB'})
  })
  after(async () => {
    await node.kill()
    await schema.drop()
    await rm(dataDir, {recursive: true, force: true})
  })

  it('keeps peak RSS under 200 MB through a 1 GiB upload in 8 MiB chunks', async (t) => {
    const url = await createUpload(node.url, GiB)
    const expected = createHash('sha256')
    // A 64 MiB random pattern, each chunk made distinct by its offset: real hashing work, little client memory.
    const pattern = randomBytes(64 * 1024 * 1024)
    let offset = 0
    while (offset < GiB) {
      const chunk = Buffer.from(pattern.subarray(offset % pattern.length, (offset % pattern.length) + CHUNK))
      chunk.writeDoubleBE(offset, 0)
      expected.update(chunk)
      offset = await patch(url, offset, chunk)
    }
    const peak = await node.peakRss()
    const status = (await (await fetch(`${node.url}/api/uploads/${new URL(url).pathname.split('/').pop()}`)).json()) as {status: string; sha256: string}
    assert.equal(status.status, 'completed')
    assert.equal(status.sha256, expected.digest('hex'))
    t.diagnostic(`peak RSS ${(peak / 1024 / 1024).toFixed(0)} MB`)
    assert.ok(peak < 200 * 1024 * 1024, `peak RSS ${(peak / 1024 / 1024).toFixed(0)} MB`)
  })
})
