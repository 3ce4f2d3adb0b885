import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {createReadStream} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'
import {SharedRead} from './shared-read.js'

async function drain(stream: NodeJS.ReadableStream, delayMs = 0): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    if (delayMs) await sleep(delayMs)
  }
  return Buffer.concat(chunks)
}

describe('one read of a file for several copies', () => {
  let dir: string
  let file: string
  const data = randomBytes(6 * 1024 * 1024 + 123)
  const opened: number[] = []
  const open = async (offset: number) => {
    opened.push(offset)
    return createReadStream(file, {start: offset, highWaterMark: 256 << 10})
  }
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'shared-read-'))
    file = path.join(dir, 'video.mp4')
    await writeFile(file, data)
  })
  after(() => rm(dir, {recursive: true, force: true}))

  it('reads the file once, from the smallest offset, and gives each copy its bytes from its own offset', async () => {
    opened.length = 0
    const read = new SharedRead(open, 3)
    const [a, b, c] = [read.share(), read.share(), read.share()]
    const fast = drain(await a.open(0))
    const resumed = drain(await b.open(1_000_001))
    const slow = drain(await c.open(4096), 2)
    const [whole, rest, fromSlow] = await Promise.all([fast, resumed, slow])
    assert.ok(whole.equals(data), 'the copy from 0 has every byte')
    assert.ok(rest.equals(data.subarray(1_000_001)), 'the resumed copy has the bytes from its offset')
    assert.ok(fromSlow.equals(data.subarray(4096)), 'the slow reader has every byte from its offset')
    assert.deepEqual(opened, [0], 'one read, from the smallest offset')
  })

  it('starts once every copy has opened or given up, and a copy that stops early does not hold the others back', async () => {
    opened.length = 0
    const read = new SharedRead(open, 3)
    const [held, quitter, taker] = [read.share(), read.share(), read.share()]
    const stream = await taker.open(0)
    const quitting = await quitter.open(0)
    assert.deepEqual(opened, [], 'not before the third copy decided')
    held.done() // its peer already held a verified copy: it never opens
    // The quitter's peer refused after one chunk and stopped reading.
    const first = await new Promise<Buffer>((resolve) => quitting.once('data', resolve))
    quitting.pause()
    assert.ok(first.length > 0)
    quitter.done()
    const copy = await drain(stream)
    assert.ok(copy.equals(data))
    assert.deepEqual(opened, [0])
  })

  it('hands a read error to every copy', async () => {
    const read = new SharedRead(async () => createReadStream(path.join(dir, 'missing.mp4')), 2)
    const [a, b] = [read.share(), read.share()]
    const copies = [drain(await a.open(0)), drain(await b.open(0))]
    for (const copy of copies) await assert.rejects(copy, /ENOENT/)
  })
})
