import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {hashThreads, HashThreadLost} from './hash-threads.js'
import {LiveHashers, THREAD_FROM_BYTES, UploadHasher} from './upload-hasher.js'

const digest = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex')

describe('UploadHasher and LiveHashers', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hasher-'))
  })
  after(() => rm(dir, {recursive: true, force: true}))

  it('gives digests without ending the hash, so the upload can go on', async () => {
    const data = randomBytes(300_000)
    const hasher = UploadHasher.fresh()
    hasher.update(data.subarray(0, 1000))
    assert.equal((await hasher.digests()).sha256, digest('sha256', data.subarray(0, 1000)))
    // Many chunks in one tick, some sharing memory with bytes that are not the upload's.
    const shared = Buffer.concat([Buffer.from('not-ours'), data.subarray(1000), Buffer.from('nor-this')])
    for (let at = 8; at < shared.length - 8; at += 7000) hasher.update(shared.subarray(at, Math.min(at + 7000, shared.length - 8)))
    assert.equal(hasher.bytes, data.length)
    assert.deepEqual(await hasher.digests(), {sha256: digest('sha256', data), md5: digest('md5', data)})
  })

  it('rolls back to a copy (a request whose checksum failed)', async () => {
    const hasher = UploadHasher.fresh()
    hasher.update(Buffer.from('good'))
    const before = hasher.copy()
    hasher.update(Buffer.from('bad'))
    assert.equal(before.bytes, 4)
    assert.equal((await before.digests()).sha256, digest('sha256', Buffer.from('good')))
  })

  it('continues from memory without reading the file, and catches up from the file when it must', async () => {
    const data = randomBytes(100_000)
    const file = path.join(dir, 'upload')
    await writeFile(file, data)
    const live = new LiveHashers()
    const first = await live.at('u', file, 0)
    first.update(data.subarray(0, 40_000))
    live.keep('u', first)
    // Same process: the hasher in memory is used as it is.
    assert.equal(await live.at('u', path.join(dir, 'no-such-file'), 40_000), first)
    // A new process (nothing in memory): the first 40 000 bytes are read back once.
    const resumed = await new LiveHashers().at('u', file, 40_000)
    resumed.update(data.subarray(40_000))
    assert.equal((await resumed.digests()).sha256, digest('sha256', data))
  })

  it('evicts the least recently used hashers beyond its capacity', async () => {
    const file = path.join(dir, 'empty')
    await writeFile(file, '')
    const live = new LiveHashers(2)
    const hashers = ['a', 'b', 'c'].map((id) => {
      const h = UploadHasher.fresh()
      live.keep(id, h)
      return h
    })
    assert.notEqual(await live.at('a', file, 0), hashers[0], 'a was evicted')
    assert.equal(await live.at('c', file, 0), hashers[2])
  })

  it('refuses to catch up past the end of the file', async () => {
    const file = path.join(dir, 'short')
    await writeFile(file, randomBytes(10))
    await assert.rejects(UploadHasher.fresh().catchUp(file, 20), /shorter/)
  })

  it('hashes a file larger than its backlog allows without holding it in memory, and starts over from the file when its thread died', async () => {
    const data = randomBytes(80 << 20)
    const file = path.join(dir, 'large')
    await writeFile(file, data)
    const live = new LiveHashers()
    const hasher = await live.at('big', file, data.length)
    // The catch-up waited for its thread: never much more than its high water mark (8 MiB) handed over unhashed.
    const peak = Math.max(...hashThreads.running.map((t) => t.peakUnhashed))
    assert.ok(peak > 0 && peak <= 10 << 20, `peak backlog ${peak}`)
    assert.equal((await hasher.digests()).sha256, digest('sha256', data))
    live.keep('big', hasher)

    await hashThreads.terminateAll()
    assert.equal(hasher.intact, false)
    await assert.rejects(hasher.digests(), HashThreadLost)
    const rebuilt = await live.at('big', file, data.length)
    assert.notEqual(rebuilt, hasher)
    assert.deepEqual(await rebuilt.digests(), {sha256: digest('sha256', data), md5: digest('md5', data)})
  })

  it('hashes an upload smaller than THREAD_FROM_BYTES on the event loop: same digests, copies and catch-up, no thread', async () => {
    await hashThreads.terminateAll()
    const data = randomBytes(200_000)
    const file = path.join(dir, 'small')
    await writeFile(file, data)
    const hasher = UploadHasher.fresh(data.length)
    hasher.update(data.subarray(0, 50_000))
    const before = hasher.copy()
    hasher.update(Buffer.from('not kept'))
    assert.equal((await before.digests()).sha256, digest('sha256', data.subarray(0, 50_000)))
    // A resume with nothing in memory, of an upload whose size the row gives.
    const resumed = await new LiveHashers().at('small', file, 120_000, data.length)
    resumed.update(data.subarray(120_000))
    assert.deepEqual(await resumed.digests(), {sha256: digest('sha256', data), md5: digest('md5', data)})
    assert.equal(hashThreads.running.length, 0, 'no hashing thread was started')
    // From THREAD_FROM_BYTES on (or of a length not known yet), a thread holds the state.
    UploadHasher.fresh(THREAD_FROM_BYTES)
    assert.equal(hashThreads.running.length, 1)
  })
})
