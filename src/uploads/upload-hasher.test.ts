import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'
import {UploadHasher} from './upload-hasher.js'

const digest = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex')

describe('UploadHasher', () => {
  it('continues a hash from a saved state as if it had never stopped', async () => {
    const data = randomBytes(300_000)
    let hasher = await UploadHasher.resume(null, 0)
    hasher.update(data.subarray(0, 123_457))
    const saved = hasher.save()
    hasher = await UploadHasher.resume(new Uint8Array(saved), 123_457)
    hasher.update(data.subarray(123_457))
    assert.deepEqual(hasher.digests(), {sha256: digest('sha256', data), md5: digest('md5', data)})
  })

  it('catches up on bytes that reached the file after the last saved state, reading only the gap', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hasher-'))
    try {
      const data = randomBytes(100_000)
      const file = path.join(dir, 'upload')
      await writeFile(file, data)
      const first = await UploadHasher.resume(null, 0)
      first.update(data.subarray(0, 40_000))
      const resumed = await UploadHasher.resume(first.save(), 40_000)
      await resumed.catchUp(file, 100_000)
      assert.equal(resumed.bytes, 100_000)
      assert.equal(resumed.digests().sha256, digest('sha256', data))
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  it('refuses to catch up past the end of the file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hasher-'))
    try {
      const file = path.join(dir, 'upload')
      await writeFile(file, randomBytes(10))
      const hasher = await UploadHasher.resume(null, 0)
      await assert.rejects(hasher.catchUp(file, 20), /shorter/)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})
