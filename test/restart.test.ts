/**
 * The node as a process: killed in the middle of a request and restarted, the upload resumes
 * and still ends with the right hashes; stopped with SIGTERM, it lets the request in flight
 * finish and exits 0.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import http from 'node:http'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createHash} from 'node:crypto'
import {createUpload, PATCH_HEADERS, request, TUS} from './support/http.js'
import {freshSchema} from './support/node.js'
import {freePort, spawnNode} from './support/process-node.js'
import {TEST_DATABASE_URL} from './support/services.js'

/** Starts a PATCH and returns a handle to feed its body piece by piece. */
function streamingPatch(url: string, offset: number) {
  const req = http.request(url, {method: 'PATCH', headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset)}})
  const response = new Promise<http.IncomingMessage | Error>((resolve) => {
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve(res))
    })
    req.on('error', resolve)
  })
  return {
    write: (chunk: Buffer) => new Promise<void>((resolve) => (req.write(chunk) ? resolve() : req.once('drain', resolve))),
    end: () => req.end(),
    response,
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('node process lifecycle', () => {
  let dataDir: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let env: Record<string, string>
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'restart-'))
    schema = await freshSchema()
    env = {DATA_DIR: dataDir, DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema.schema}
  })
  after(async () => {
    await schema.drop()
    await rm(dataDir, {recursive: true, force: true})
  })

  it('resumes an upload after the node was killed mid-request, with the right hashes', async () => {
    const size = 8 * 1024 * 1024
    const data = randomBytes(size)
    const port = await freePort()
    let node = await spawnNode(env, port)
    const url = await createUpload(node.url, size)

    // 1 MiB acknowledged normally, then a PATCH killed half-way through its body.
    await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: data.subarray(0, 1 << 20)})
    const patch = streamingPatch(url, 1 << 20)
    for (let sent = 1 << 20; sent < 4 << 20; sent += 256 * 1024) {
      await patch.write(data.subarray(sent, sent + 256 * 1024))
      await pause(5)
    }
    await pause(200)
    await node.kill('SIGKILL')
    assert.ok((await patch.response) instanceof Error || true)

    node = await spawnNode(env, port)
    try {
      const head = await request('HEAD', url, {headers: TUS})
      assert.equal(head.status, 200)
      const offset = Number(head.headers['upload-offset'])
      assert.ok(offset >= 1 << 20 && offset <= 4 << 20, `resumes from ${offset}, beyond the acknowledged MiB`)
      const rest = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset)}, body: data.subarray(offset)})
      assert.equal(rest.status, 204)
      const status = (await (await fetch(`${node.url}/api/uploads/${new URL(url).pathname.split('/').pop()}`)).json()) as Record<string, string>
      assert.equal(status.status, 'completed')
      assert.equal(status.sha256, createHash('sha256').update(data).digest('hex'))
      assert.equal(status.md5, createHash('md5').update(data).digest('hex'))
    } finally {
      await node.kill('SIGKILL')
    }
  })

  it('on SIGTERM stops taking connections, lets the request in flight finish, and exits 0', async () => {
    const node = await spawnNode(env)
    const size = 2 * 1024 * 1024
    const url = await createUpload(node.url, size)
    const patch = streamingPatch(url, 0)
    await patch.write(randomBytes(size / 2))
    await pause(100)
    node.child.kill('SIGTERM')
    await pause(300)
    await assert.rejects(fetch(`${node.url}/healthz`), 'no new connections are accepted')
    await patch.write(randomBytes(size / 2))
    patch.end()
    const res = await patch.response
    assert.ok(!(res instanceof Error), `the in-flight request finished: ${res}`)
    assert.equal(res.statusCode, 204)
    assert.equal(res.headers['upload-offset'], String(size))
    assert.equal(await node.exited(), 0)
  })

  it('refuses to start on a bad setting, naming the variable in one line', async () => {
    await assert.rejects(spawnNode({...env, MAX_UPLOAD_SIZE: 'lots'}), (error: Error) => {
      assert.match(error.message, /exited with 2/)
      assert.match(error.message, /invalid MAX_UPLOAD_SIZE: expected a size/)
      return true
    })
  })
})
