import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdtemp, open, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {GrowingFile} from './replica-chain.js'

const MiB = 1 << 20

async function collect(file: GrowingFile, from: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of file.bytes(from, new AbortController().signal)) chunks.push(chunk)
  return Buffer.concat(chunks)
}

describe('a growing partial file, read by the next peer of a chain', () => {
  let dir: string
  before(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'growing-'))))
  after(() => rm(dir, {recursive: true, force: true}))

  it('sends the bytes that just landed from memory, and older ones from the file', async () => {
    // 12 MiB landed in 64 KiB chunks; then the file's bytes are zeroed behind the reader's back:
    // what comes from memory is still the original, what comes from the file is zeros.
    const partial = path.join(dir, 'a.part')
    const original = randomBytes(12 * MiB)
    await writeFile(partial, original)
    let onDisk = 0
    const growing = await GrowingFile.open(partial, () => onDisk, original.length)
    for (let at = 0; at < original.length; at += 64 << 10) {
      growing.kept(original.subarray(at, at + (64 << 10)))
      onDisk = at + (64 << 10)
    }
    growing.end()
    const handle = await open(partial, 'r+')
    await handle.write(Buffer.alloc(original.length), 0, original.length, 0)
    await handle.close()
    const sent = await collect(growing, 0)
    await growing.close()
    assert.equal(sent.length, original.length)
    // The last 8 MiB (RECENT_BYTES) came from memory, the first 4 MiB from the (zeroed) file.
    assert.ok(sent.subarray(0, 4 * MiB).equals(Buffer.alloc(4 * MiB)))
    assert.ok(sent.subarray(4 * MiB).equals(original.subarray(4 * MiB)))
  })

  it('waits for bytes as they land, from any offset, and says when the copy ended short', async () => {
    const partial = path.join(dir, 'b.part')
    const data = randomBytes(3 * MiB)
    await writeFile(partial, data)
    let onDisk = MiB
    const growing = await GrowingFile.open(partial, () => onDisk, 4 * MiB)
    const reading = collect(growing, 512 << 10).catch((error: Error) => error)
    growing.kept(data.subarray(MiB, 2 * MiB))
    onDisk = 2 * MiB
    growing.grew()
    await new Promise((resolve) => setImmediate(resolve))
    onDisk = 3 * MiB
    growing.kept(data.subarray(2 * MiB, 3 * MiB))
    growing.end()
    const error = await reading
    await growing.close()
    assert.ok(error instanceof Error && error.name === 'SourceEndedShort', String(error))
    assert.match(error.message, /ended at 3145728 of 4194304/)
  })
})
