/**
 * tus-js-client in its IETF draft modes (interop 5 and 6), end to end over a network that keeps
 * cutting the connection: several appends, resumption by offset retrieval, and at the end the
 * same row, bytes, sha256 and single upload.completed event as a tus upload.
 */
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import * as tus from 'tus-js-client'
import {OutboxEventEntity} from '../src/db/entities/outbox-event.js'
import {referenceDigests, writeRandomFile} from './support/files.js'
import {startFlakyProxy} from './support/flaky-proxy.js'
import {startTestNode, type TestNode} from './support/node.js'

type Protocol = 'ietf-draft-03' | 'ietf-draft-05'

function upload(endpoint: string, content: Buffer, protocol: Protocol, options: Partial<tus.UploadOptions> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(content, {
      endpoint,
      protocol,
      chunkSize: 1 << 20,
      retryDelays: Array.from({length: 40}, (_, i) => (i === 0 ? 0 : 100)),
      metadata: {filename: 'holiday.mp4', filetype: 'video/mp4'},
      onSuccess: () => resolve(u.url!),
      onError: reject,
      ...options,
    } as tus.UploadOptions)
    u.start()
  })
}

describe('tus-js-client in IETF draft mode (embedded database)', () => {
  let node: TestNode
  let dir: string
  before(async () => {
    node = await startTestNode('embedded')
    dir = await mkdtemp(path.join(os.tmpdir(), 'draft-client-'))
  })
  after(async () => {
    await node.stop()
    await rm(dir, {recursive: true, force: true})
  })

  for (const [protocol, interop] of [['ietf-draft-03', 5], ['ietf-draft-05', 6]] as const) {
    for (const withData of [false, true]) {
      it(`uploads a file in 1 MiB appends through cut connections (${protocol}, interop ${interop}${withData ? ', data in the creation request' : ''})`, async () => {
        const size = 5 * 1024 * 1024 + 4321
        const file = path.join(dir, `${protocol}-${withData}.bin`)
        await writeRandomFile(file, size)
        const expected = referenceDigests(file)
        const content = await readFile(file)

        const proxy = await startFlakyProxy(node.url, 1.5 * 1024 * 1024)
        try {
          const url = await upload(`${proxy.url}/files/`, content, protocol, {uploadDataDuringCreation: withData})
          assert.ok(proxy.cuts >= 2, `the network was cut ${proxy.cuts} times`)
          const id = new URL(url).pathname.split('/').pop()!
          const row = await node.uploads.findById(id)
          assert.equal(row?.status, 'completed')
          assert.equal(row?.size, size)
          assert.equal(row?.sha256, expected.sha256)
          assert.equal(row?.filename, 'holiday.mp4')
          assert.ok((await readFile(path.join(node.dataDir, 'uploads', id))).equals(content))
          const events = await node.db.getRepository(OutboxEventEntity).findBy({uploadId: id, topic: 'upload.completed'})
          assert.equal(events.length, 1)
        } finally {
          await proxy.close()
        }
      })
    }
  }

  it('uploads a stream of unknown length (interop 6): the length is declared by the request that completes it', async () => {
    const file = path.join(dir, 'deferred.bin')
    await writeRandomFile(file, 2 * 1024 * 1024 + 17)
    const content = await readFile(file)
    const {Readable} = await import('node:stream')
    const url = await new Promise<string>((resolve, reject) => {
      const u = new tus.Upload(Readable.from([content.subarray(0, 1_000_000), content.subarray(1_000_000)]) as never, {
        endpoint: `${node.url}/files/`,
        protocol: 'ietf-draft-05',
        uploadLengthDeferred: true,
        chunkSize: 512 * 1024,
        onSuccess: () => resolve(u.url!),
        onError: reject,
      } as tus.UploadOptions)
      u.start()
    })
    const row = await node.uploads.findById(new URL(url).pathname.split('/').pop()!)
    assert.equal(row?.status, 'completed')
    assert.equal(row?.size, content.length)
    assert.equal(row?.sha256, referenceDigests(file).sha256)
  })
})
