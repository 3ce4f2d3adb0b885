import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {describe, it} from 'node:test'
import {AppError} from '../errors.js'
import {parseUploadChecksum, RequestDigest} from './checksum.js'

describe('Upload-Checksum', () => {
  it('parses each supported algorithm with a digest of the right size', () => {
    for (const algorithm of ['sha1', 'md5', 'sha256', 'sha512'] as const) {
      const digest = createHash(algorithm).update('x').digest()
      const parsed = parseUploadChecksum(`${algorithm} ${digest.toString('base64')}`)
      assert.equal(parsed.algorithm, algorithm)
      assert.ok(parsed.digest.equals(digest))
    }
  })

  it('refuses unknown algorithms and values it cannot parse with 400', () => {
    const sha1 = createHash('sha1').update('x').digest('base64')
    for (const value of ['crc32 AAAAAA==', 'sha1', `sha1  ${sha1}`, 'sha1 !!!!', `sha1 ${sha1} extra`, 'sha1 not-base64']) {
      assert.throws(() => parseUploadChecksum(value), (e: unknown) => e instanceof AppError && e.status === 400, value)
    }
  })

  it('answers a base64 digest of the wrong size for its algorithm with 460: it cannot match', () => {
    const sha1 = createHash('sha1').update('x').digest('base64')
    for (const value of ['sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA', `sha256 ${sha1}`, 'md5 AAAA']) {
      assert.throws(() => parseUploadChecksum(value), (e: unknown) => e instanceof AppError && e.status === 460, value)
    }
  })

  it('takes a digest of the right size without its base64 padding', () => {
    const digest = createHash('sha1').update('x').digest()
    assert.ok(parseUploadChecksum(`sha1 ${digest.toString('base64').replace(/=+$/, '')}`).digest.equals(digest))
  })

  it('matches the digest of the bytes it saw, and only that', () => {
    const expected = {algorithm: 'sha256' as const, digest: createHash('sha256').update('hello world').digest()}
    const digest = new RequestDigest(['sha256'])
    digest.update(Buffer.from('hello '))
    digest.update(Buffer.from('world'))
    assert.ok(digest.matches(expected))
    const other = new RequestDigest(['sha256'])
    other.update(Buffer.from('hello'))
    assert.ok(!other.matches(expected))
  })

  it('digests with every algorithm when the checksum comes later, in a trailer', () => {
    const digest = new RequestDigest()
    digest.update(Buffer.from('abc'))
    assert.ok(digest.matches({algorithm: 'sha512', digest: createHash('sha512').update('abc').digest()}))
  })
})
