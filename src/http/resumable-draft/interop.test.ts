import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {
  completenessHeader,
  dispositionFilename,
  formatUploadLimit,
  indicatedLength,
  parseCompleteness,
  parseInteropVersion,
  parseSfBoolean,
  parseSfInteger,
  rulesOf,
} from './interop.js'

const headers = (h: Record<string, string>) => (name: string) => h[name.toLowerCase()] ?? h[name]

describe('resumable upload draft: header rules per interop version', () => {
  it('recognises the interop versions it speaks and tells the others apart', () => {
    assert.equal(parseInteropVersion(undefined), 'absent')
    for (const v of [3, 4, 5, 6, 7, 8]) assert.equal(parseInteropVersion(String(v)), v)
    assert.equal(parseInteropVersion('2'), 'unsupported')
    assert.equal(parseInteropVersion('9'), 'unsupported')
    assert.equal(parseInteropVersion('six'), 'unsupported')
  })

  it('parses structured-field integers and booleans and ignores anything else', () => {
    assert.equal(parseSfInteger('42'), 42)
    assert.equal(parseSfInteger(' 7 '), 7)
    assert.equal(parseSfInteger('-1'), undefined)
    assert.equal(parseSfInteger('1.5'), undefined)
    assert.equal(parseSfInteger('1e3'), undefined)
    assert.equal(parseSfInteger('1234567890123456'), undefined)
    assert.equal(parseSfBoolean('?1'), true)
    assert.equal(parseSfBoolean('?0'), false)
    assert.equal(parseSfBoolean('true'), undefined)
    assert.equal(parseSfBoolean('1'), undefined)
  })

  it('reads completeness from Upload-Incomplete in interop 3 and from Upload-Complete later', () => {
    assert.equal(parseCompleteness(3, headers({'Upload-Incomplete': '?0'})), true)
    assert.equal(parseCompleteness(3, headers({'Upload-Incomplete': '?1'})), false)
    assert.equal(parseCompleteness(3, headers({'Upload-Complete': '?1'})), undefined)
    assert.equal(parseCompleteness(6, headers({'Upload-Complete': '?1'})), true)
    assert.equal(parseCompleteness(6, headers({'Upload-Incomplete': '?0'})), undefined)
    assert.deepEqual(completenessHeader(3, true), {'Upload-Incomplete': '?0'})
    assert.deepEqual(completenessHeader(5, false), {'Upload-Complete': '?0'})
  })

  it('formats Upload-Limit only from interop 6, with expires before max-age', () => {
    assert.equal(formatUploadLimit(5, {maxSize: 10}), undefined)
    assert.equal(formatUploadLimit(6, {maxSize: 10, maxAgeSeconds: 60.7}), 'min-size=0, max-size=10, expires=60')
    assert.equal(formatUploadLimit(8, {maxSize: 0, maxAgeSeconds: 5}), 'min-size=0, max-age=5')
  })

  it('requires application/partial-upload for appends from interop 6 only', () => {
    assert.equal(rulesOf(5).appendNeedsPartialUploadType, false)
    assert.equal(rulesOf(6).appendNeedsPartialUploadType, true)
    assert.equal(rulesOf(3).appendCompleteByDefault, true)
    assert.equal(rulesOf(4).appendCompleteByDefault, false)
  })

  it('derives the length from Upload-Length or a complete request, and spots inconsistent ones', () => {
    assert.equal(indicatedLength({complete: true, contentLength: 10, offset: 5}), 15)
    assert.equal(indicatedLength({complete: false, contentLength: 10, offset: 0}), undefined)
    assert.equal(indicatedLength({uploadLength: 20, complete: false, contentLength: 10, offset: 0}), 20)
    assert.equal(indicatedLength({uploadLength: 20, complete: true, contentLength: 10, offset: 0}), 'inconsistent')
  })

  it('reads the filename of a Content-Disposition, preferring filename*', () => {
    assert.equal(dispositionFilename('inline; filename="a b.mp4"'), 'a b.mp4')
    assert.equal(dispositionFilename(`inline; filename="x.mp4"; filename*=UTF-8''%C3%A9t%C3%A9.mp4`), 'été.mp4')
    assert.equal(dispositionFilename('attachment; filename=clip.mov'), 'clip.mov')
    assert.equal(dispositionFilename('inline'), undefined)
  })
})
