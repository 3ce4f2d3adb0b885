/**
 * Whole uploads with a real client (tus-js-client in Node), over a network that keeps cutting
 * the connection: the bytes, the hashes, the row and the outbox event at the end.
 */
import assert from 'node:assert/strict'
import {createReadStream} from 'node:fs'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import * as tus from 'tus-js-client'
import {OutboxEventEntity} from '../src/db/entities/outbox-event.js'
import {uploadCompletedSchema} from '../src/events/event-schemas.js'
import {referenceDigests, writeRandomFile} from './support/files.js'
import {startFlakyProxy} from './support/flaky-proxy.js'
import {DATABASE_KINDS, startTestNode, type TestNode} from './support/node.js'

function upload(endpoint: string, file: string, size: number, options: Partial<tus.UploadOptions> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(createReadStream(file) as never, {
      endpoint,
      uploadSize: size,
      chunkSize: 1 << 20,
      retryDelays: [0, 50, 100, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200],
      metadata: {filename: 'holiday.mp4', filetype: 'video/mp4'},
      onSuccess: () => resolve(u.url!),
      onError: reject,
      ...options,
    })
    u.start()
  })
}

for (const kind of DATABASE_KINDS) {
  describe(`a whole upload with tus-js-client (${kind} database)`, () => {
    let node: TestNode
    let dir: string
    before(async () => {
      node = await startTestNode(kind)
      dir = await mkdtemp(path.join(os.tmpdir(), 'flow-'))
    })
    after(async () => {
      await node.stop()
      await rm(dir, {recursive: true, force: true})
    })

    it('survives connections cut mid-chunk and ends with the source bytes, hashes, row and event', async () => {
      const size = 6 * 1024 * 1024 + 12345
      const file = path.join(dir, 'source.bin')
      await writeRandomFile(file, size)
      const expected = referenceDigests(file)

      // Every connection dies after ~1.5 MiB: each 1 MiB chunk sometimes lands, sometimes not.
      const proxy = await startFlakyProxy(node.url, 1.5 * 1024 * 1024)
      try {
        const url = await upload(`${proxy.url}/files/`, file, size)
        assert.ok(proxy.cuts >= 3, `the network was cut ${proxy.cuts} times`)
        const id = new URL(url).pathname.split('/').pop()!

        assert.ok((await readFile(path.join(node.dataDir, 'uploads', id))).equals(await readFile(file)))
        const row = await node.uploads.findById(id)
        assert.equal(row?.status, 'completed')
        assert.equal(row?.size, size)
        assert.equal(row?.bytesReceived, size)
        assert.equal(row?.sha256, expected.sha256)
        assert.equal(row?.md5, expected.md5)
        assert.equal(row?.filename, 'holiday.mp4')
        assert.ok(row?.completedAt instanceof Date)

        const events = await node.db.getRepository(OutboxEventEntity).findBy({uploadId: id})
        assert.equal(events.length, 1, 'exactly one completion event')
        const event = uploadCompletedSchema.parse(events[0]!.payload)
        assert.equal(event.sha256, expected.sha256)
        assert.equal(event.size, size)
        assert.equal(events[0]!.topic, 'upload.completed')

        const status = (await (await fetch(`${node.url}/api/uploads/${id}`)).json()) as Record<string, unknown>
        assert.equal(status.status, 'completed')
        assert.equal(status.sha256, expected.sha256)
        assert.equal(status.md5, expected.md5)
        assert.equal(status.offset, size)
      } finally {
        await proxy.close()
      }
    })

    it('resumes from the stored URL after the client gave up, without resending what arrived', async () => {
      const size = 3 * 1024 * 1024
      const file = path.join(dir, 'resume.bin')
      await writeRandomFile(file, size)
      const first = new tus.Upload(createReadStream(file) as never, {endpoint: `${node.url}/files/`, uploadSize: size, chunkSize: 1 << 20})
      await new Promise<void>((resolve, reject) => {
        first.options.onChunkComplete = (_chunk, accepted) => {
          if (accepted >= 1 << 20) void first.abort().then(resolve)
        }
        first.options.onError = reject
        first.start()
      })
      const url = first.url!
      const sent: number[] = []
      const resumedUrl = await upload(`${node.url}/files/`, file, size, {uploadUrl: url, onChunkComplete: (chunk) => void sent.push(chunk)})
      assert.equal(resumedUrl, url)
      assert.ok(sent.reduce((a, b) => a + b, 0) <= size - (1 << 20), 'the first MiB was not sent again')
      const row = await node.uploads.findById(new URL(url).pathname.split('/').pop()!)
      assert.equal(row?.sha256, referenceDigests(file).sha256)
    })
  })
}
