import assert from 'node:assert/strict'
import {readdirSync, readlinkSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {finished} from 'node:stream/promises'
import {after, before, describe, it} from 'node:test'
import {COALESCE_BYTES, HashingFileSink, RELEASE_AFTER_MS} from './hashing-file-sink.js'

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

  it('gathers a trickle, writes it at once when the body ends, and holds no file meanwhile', async () => {
    const file = path.join(dir, 'upload')
    await writeFile(file, 'xx')
    const seen: number[] = []
    const sink = new HashingFileSink(file, 2, [{update: (chunk) => seen.push(chunk.byteLength)}])
    for (const piece of ['abc', 'de', 'f']) {
      sink.write(Buffer.from(piece))
      await pause(RELEASE_AFTER_MS + 100)
      assert.equal(openFiles(file), 0, 'no file held while the source trickles')
      assert.equal(sink.position, 2, 'gathered bytes are not on disk, so not counted')
    }
    sink.end()
    await finished(sink)
    assert.equal(await readFile(file, 'utf8'), 'xxabcdef')
    assert.equal(sink.position, 8)
    assert.deepEqual(seen, [3, 2, 1], 'each chunk hashed once, in order, after the one write')
    assert.equal(openFiles(file), 0)
  })

  it('writes what it gathered after a while, and lets go of its file again', async () => {
    const file = path.join(dir, 'slow')
    await writeFile(file, '')
    const sink = new HashingFileSink(file, 0, [], undefined, 200)
    sink.write(Buffer.from('abc'))
    await pause(50)
    sink.write(Buffer.from('de'))
    await pause(300)
    assert.equal(await readFile(file, 'utf8'), 'abcde')
    assert.equal(sink.position, 5)
    await pause(RELEASE_AFTER_MS + 100)
    assert.equal(openFiles(file), 0, 'closed while the source is silent')
    sink.end(Buffer.from('f'))
    await finished(sink)
    assert.equal(await readFile(file, 'utf8'), 'abcdef')
  })

  it('writes large chunks at once, with what was gathered before them', async () => {
    const file = path.join(dir, 'large')
    await writeFile(file, '')
    const sink = new HashingFileSink(file, 0, [])
    sink.write(Buffer.from('ab'))
    const large = Buffer.alloc(COALESCE_BYTES, 0x63)
    await new Promise<void>((resolve, reject) => sink.write(large, (error) => (error ? reject(error) : resolve())))
    assert.equal(sink.position, 2 + COALESCE_BYTES, 'on disk once its write is answered')
    assert.equal((await readFile(file)).subarray(0, 3).toString(), 'abc')
    sink.end()
    await finished(sink)
  })

  it('writes what it gathered when its source is cut', async () => {
    const file = path.join(dir, 'cut')
    await writeFile(file, '')
    const seen: number[] = []
    const sink = new HashingFileSink(file, 0, [{update: (chunk) => seen.push(chunk.byteLength)}])
    sink.write(Buffer.from('abcd'))
    await pause(20)
    sink.destroy(new Error('the client went away'))
    await finished(sink).catch(() => {})
    assert.equal(await readFile(file, 'utf8'), 'abcd')
    assert.equal(sink.position, 4)
    assert.deepEqual(seen, [4])
    assert.equal(openFiles(file), 0)
  })

  it('holds no file before its first write: a crowd of requests arriving at once opens none', async () => {
    const files = await Promise.all(Array.from({length: 20}, async (_, i) => {
      const file = path.join(dir, `crowd-${i}`)
      await writeFile(file, '')
      return file
    }))
    const sinks = files.map((file) => new HashingFileSink(file, 0, []))
    await pause(50)
    assert.equal(files.reduce((n, file) => n + openFiles(file), 0), 0)
    for (const sink of sinks) sink.end(Buffer.from('z'))
    await Promise.all(sinks.map((sink) => finished(sink)))
    assert.deepEqual(await Promise.all(files.map((file) => readFile(file, 'utf8'))), files.map(() => 'z'))
  })

  it('closes its file right after each write while more than 1024 are open across the process', async () => {
    const crowd = await Promise.all(Array.from({length: 1030}, async (_, i) => {
      const file = path.join(dir, `busy-${i}`)
      await writeFile(file, '')
      const sink = new HashingFileSink(file, 0, [])
      // A large write opens the file at once; the sink keeps it until RELEASE_AFTER_MS.
      await new Promise<void>((resolve, reject) => sink.write(Buffer.alloc(COALESCE_BYTES), (error) => (error ? reject(error) : resolve())))
      return sink
    }))
    const file = path.join(dir, 'busy-last')
    await writeFile(file, '')
    const sink = new HashingFileSink(file, 0, [])
    await new Promise<void>((resolve, reject) => sink.write(Buffer.alloc(COALESCE_BYTES), (error) => (error ? reject(error) : resolve())))
    await pause(20)
    assert.equal(openFiles(file), 0, 'closed without waiting for its idle timer')
    for (const s of [...crowd, sink]) s.end()
    await Promise.all([...crowd, sink].map((s) => finished(s)))
  })
})
