import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {decodeMetadata, describeUpload, encodeMetadata, sanitizeFilename, sanitizeFiletype} from './metadata.js'

describe('upload metadata', () => {
  it('keeps only the last path segment of a file name, whatever the separator', () => {
    assert.equal(sanitizeFilename('../../etc/passwd'), 'passwd')
    assert.equal(sanitizeFilename('C:\\Users\\me\\clip.mov'), 'clip.mov')
    assert.equal(sanitizeFilename('..'), null)
    assert.equal(sanitizeFilename('/'), null)
  })

  it('removes control and bidi-override characters and leading dots', () => {
    assert.equal(sanitizeFilename('a\u0000b\u001fc\u202ed.mp4'), 'abcd.mp4')
    assert.equal(sanitizeFilename('...hidden'), 'hidden')
  })

  it('bounds the length and keeps a short extension', () => {
    const name = sanitizeFilename(`${'x'.repeat(300)}.webm`)!
    assert.equal(name.length, 255)
    assert.ok(name.endsWith('.webm'))
  })

  it('accepts only well-formed media types, without parameters', () => {
    assert.equal(sanitizeFiletype('Video/MP4'), 'video/mp4')
    assert.equal(sanitizeFiletype('video/mp4; codecs="avc1"'), 'video/mp4')
    assert.equal(sanitizeFiletype('<script>'), null)
    assert.equal(sanitizeFiletype('video'), null)
  })

  it('reads the keys real clients use', () => {
    assert.deepEqual(describeUpload({name: 'a.mp4', type: 'video/mp4'}), {filename: 'a.mp4', filetype: 'video/mp4'})
    assert.deepEqual(describeUpload({filename: 'b.mov', filetype: 'video/quicktime'}), {filename: 'b.mov', filetype: 'video/quicktime'})
    assert.deepEqual(describeUpload(undefined), {filename: null, filetype: null})
  })

  it('round-trips values with NUL through the stored form', () => {
    const metadata = {a: 'x\u0000y', flag: null}
    assert.deepEqual(decodeMetadata(encodeMetadata(metadata)), metadata)
    assert.ok(!JSON.stringify(encodeMetadata(metadata)).includes('\\u0000'))
  })
})
