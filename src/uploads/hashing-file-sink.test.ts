import assert from 'node:assert/strict'
import {readdirSync, readlinkSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {finished} from 'node:stream/promises'
import {after, before, describe, it} from 'node:test'
import {HashingFileSink, RELEASE_AFTER_MS} from './hashing-file-sink.js'

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
const openFiles = (file: string) => readdirSync('/proc/self/fd').filter((fd) => {
  try {
    return readlinkFd(fd) === file
  } catch {
    return false
  }
}).length
const readlinkFd = (fd: string) => readlinkSync(`/proc/self/fd/${fd}`)

describe('HashingFileSink', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sink-'))
  })
  after(() => rm(dir, {recursive: true, force: true}))

  it('lets go of its file while its source trickles, and writes every byte at its offset', async () => {
    const file = path.join(dir, 'upload')
    await writeFile(file, 'xx')
    const seen: number[] = []
    const sink = new HashingFileSink(file, 2, [{update: (chunk) => seen.push(chunk.byteLength)}])
    for (const piece of ['abc', 'de', 'f']) {
      sink.write(Buffer.from(piece))
      await pause(20)
      assert.equal(openFiles(file), 1, 'open while it writes')
      await pause(RELEASE_AFTER_MS + 100)
      assert.equal(openFiles(file), 0, 'closed while the source is silent')
    }
    sink.end()
    await finished(sink)
    assert.equal(await readFile(file, 'utf8'), 'xxabcdef')
    assert.equal(sink.position, 8)
    assert.deepEqual(seen, [3, 2, 1])
    assert.equal(openFiles(file), 0)
  })
})
