import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {describe, it} from 'node:test'
import {copyChecker, wireHasher} from './wire-hash.js'

describe('the wire hash that checks copies', () => {
  const data = randomBytes(5 * 1024 * 1024 + 3)
  const hashes = async () => ({sha256: createHash('sha256').update(data).digest('hex'), xxh128: (await wireHasher()).update(data).digest('hex')})

  it('accepts the bytes of the row and refuses them with one byte flipped, by xxHash3-128 when the row has it', async () => {
    const row = await hashes()
    const check = (await copyChecker())(row)
    assert.equal(check.algorithm, 'xxh3-128')
    check.update(data)
    assert.equal(check.matches(), true)
    const flipped = Buffer.from(data)
    flipped[12345]! ^= 0x80
    const again = (await copyChecker())(row)
    again.update(flipped)
    assert.equal(again.matches(), false)
  })

  it('checks by sha256 a row made before it had a wire hash', async () => {
    const {sha256} = await hashes()
    const check = (await copyChecker())({sha256, xxh128: null})
    assert.equal(check.algorithm, 'sha256')
    check.update(data)
    assert.equal(check.matches(), true)
    assert.equal(check.save(), undefined, 'a sha256 check keeps no state: a resumed copy re-reads')
  })

  it('goes on from a saved state as if it had never stopped', async () => {
    const row = await hashes()
    const first = (await copyChecker())(row)
    first.update(data.subarray(0, 1_000_000))
    const state = first.save()!
    const resumed = (await copyChecker())(row)
    assert.equal(resumed.resume(state), true)
    resumed.update(data.subarray(1_000_000))
    assert.equal(resumed.matches(), true)
  })
})
