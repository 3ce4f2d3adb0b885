/**
 * Expiration: an unfinished upload that stops making progress expires (410, bytes removed, row
 * kept as `expired`); a completed upload never does, however old.
 */
import assert from 'node:assert/strict'
import {access} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, request, TUS} from './support/http.js'
import {DATABASE_KINDS, startTestNode, type TestNode} from './support/node.js'

const exists = (file: string) => access(file).then(() => true, () => false)
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

for (const kind of DATABASE_KINDS) {
  describe(`upload expiry (${kind} database)`, () => {
    let node: TestNode
    before(async () => {
      node = await startTestNode(kind, {uploadExpiry: '1s'})
    })
    after(() => node.stop())

    it('expires an idle unfinished upload and never a completed one', async () => {
      const unfinished = await createUpload(node.url, 10)
      await request('PATCH', unfinished, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
      const completed = await createUpload(node.url, 3)
      const done = await request('PATCH', completed, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
      assert.equal(done.status, 204)
      const unfinishedId = new URL(unfinished).pathname.split('/').pop()!
      const completedId = new URL(completed).pathname.split('/').pop()!

      await pause(1300)
      // Past its expiry, before any sweep: the protocol already answers 410.
      assert.equal((await request('HEAD', unfinished, {headers: TUS})).status, 410)
      assert.equal((await request('PATCH', unfinished, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3'}, body: 'def'})).status, 410)

      await node.sweeper.sweep()
      assert.equal((await node.uploads.findById(unfinishedId))?.status, 'expired')
      assert.equal(await exists(path.join(node.dataDir, 'uploads', unfinishedId)), false)
      assert.equal((await request('HEAD', unfinished, {headers: TUS})).status, 410)

      assert.equal((await node.uploads.findById(completedId))?.status, 'completed')
      assert.equal(await exists(path.join(node.dataDir, 'uploads', completedId)), true)
      const head = await request('HEAD', completed, {headers: TUS})
      assert.equal(head.status, 200)
      assert.equal(head.headers['upload-offset'], '3')
    })

    it('keeps an upload alive while it makes progress', async () => {
      const url = await createUpload(node.url, 6)
      for (let offset = 0; offset < 5; offset++) {
        await pause(400)
        const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset)}, body: 'x'})
        assert.equal(res.status, 204, `PATCH ${offset} after ${(offset + 1) * 400} ms`)
      }
      await node.sweeper.sweep()
      assert.equal((await node.uploads.findById(new URL(url).pathname.split('/').pop()!))?.status, 'uploading')
    })

    it('records a batch of checkpoints in one statement: offsets only forward, expiries pushed, uploads no longer receiving left alone', async () => {
      const ids: string[] = []
      for (const body of ['abc', 'abcd', 'ab']) {
        const url = await createUpload(node.url, body === 'ab' ? 2 : 10)
        await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body})
        ids.push(new URL(url).pathname.split('/').pop()!)
      }
      const [ahead, unverified, completed] = ids as [string, string, string]
      const later = new Date(Date.now() + 60_000)
      const receiving = await node.uploads.checkpoints([
        {id: ahead, bytesReceived: 1, expiresAt: later},
        {id: unverified, bytesReceived: null, expiresAt: later},
        {id: completed, bytesReceived: 1, expiresAt: later},
      ])
      assert.deepEqual([...receiving].sort(), [ahead, unverified].sort())
      const rows = await Promise.all(ids.map((id) => node.uploads.findById(id)))
      assert.equal(rows[0]?.bytesReceived, 3, 'never backwards')
      assert.equal(rows[1]?.bytesReceived, 4, 'null leaves the offset')
      for (const row of rows.slice(0, 2)) assert.equal(row?.expiresAt?.getTime(), later.getTime())
      assert.equal(rows[2]?.status, 'completed')
      assert.equal(rows[2]?.bytesReceived, 2)
      assert.equal(rows[2]?.expiresAt, null)
    })

    it('completes at the next HEAD an upload whose last bytes reached the file but not the row (a process killed before it answered)', async () => {
      const url = await createUpload(node.url, 6)
      const id = new URL(url).pathname.split('/').pop()!
      await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
      // The state SIGKILL between the write and its record leaves: bytes on disk, row behind.
      await (await import('node:fs/promises')).appendFile(path.join(node.dataDir, 'uploads', id), 'def')
      assert.equal((await node.uploads.findById(id))?.bytesReceived, 3)
      const head = await request('HEAD', url, {headers: TUS})
      assert.equal(head.headers['upload-offset'], '6')
      const row = await node.uploads.findById(id)
      assert.equal(row?.status, 'completed', 'the client takes offset = length as done: so must we')
      assert.equal(row?.sha256, (await import('node:crypto')).createHash('sha256').update('abcdef').digest('hex'))
    })

    it('completes at the next sweep an upload whose last bytes arrived but whose completion did not commit', async () => {
      const url = await createUpload(node.url, 3)
      const id = new URL(url).pathname.split('/').pop()!
      // The state a crash between the last write and the completion leaves behind.
      await node.store.write((await import('node:stream')).Readable.from([Buffer.from('xyz')]), id, 0)
      assert.equal((await node.uploads.findById(id))?.status, 'uploading')
      await node.sweeper.sweep()
      const row = await node.uploads.findById(id)
      assert.equal(row?.status, 'completed')
      assert.equal(row?.sha256, (await import('node:crypto')).createHash('sha256').update('xyz').digest('hex'))
    })
  })
}
