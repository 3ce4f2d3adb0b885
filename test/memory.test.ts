/**
 * Memory must not grow with file size: the node streams to disk and hashes as it goes, nothing is
 * buffered whole. Its peak RSS through a 1 GiB upload in 8 MiB chunks is that of a 128 MiB one
 * (within 24 MB), and under 256 MB. The absolute figure is mostly V8's own sizing: Node 24 lets
 * the young generation grow larger on a machine with this much memory (~50 MB more than Node 20
 * for the same upload, here), and the hashing thread is an isolate of its own (~12–21 MB).
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

  /** Uploads `size` bytes in 8 MiB chunks and checks the node's sha256 of them. */
  async function upload(size: number): Promise<void> {
    const url = await createUpload(node.url, size)
    const expected = createHash('sha256')
    let offset = 0
    while (offset < size) {
      const chunk = Buffer.from(pattern.subarray(offset % pattern.length, (offset % pattern.length) + Math.min(CHUNK, size - offset)))
      chunk.writeDoubleBE(offset, 0)
      expected.update(chunk)
      offset = await patch(url, offset, chunk)
    }
    const status = (await (await fetch(`${node.url}/api/uploads/${new URL(url).pathname.split('/').pop()}`)).json()) as {status: string; sha256: string}
    assert.equal(status.status, 'completed')
    assert.equal(status.sha256, expected.digest('hex'))
  }
  // A 64 MiB random pattern, each chunk made distinct by its offset: real hashing work, little client memory.
  const pattern = randomBytes(64 * 1024 * 1024)
  const MB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`

  it('keeps peak RSS through a 1 GiB upload in 8 MiB chunks at that of a 128 MiB one, under 256 MB', async (t) => {
    await upload(128 * 1024 * 1024)
    const small = await node.peakRss()
    await upload(GiB)
    const large = await node.peakRss()
    t.diagnostic(`peak RSS ${MB(small)} after 128 MiB, ${MB(large)} after 1 GiB`)
    assert.ok(large - small < 24 * 1024 * 1024, `peak RSS grew with the file: ${MB(small)} after 128 MiB, ${MB(large)} after 1 GiB`)
    assert.ok(large < 256 * 1024 * 1024, `peak RSS ${MB(large)}`)
  })
})
