import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {isUploadId} from './upload-repository.js'

describe('upload ids', () => {
  it('accepts the ids the server hands out and nothing that could reach SQL as garbage', () => {
    assert.ok(isUploadId('8733c62b017be7f2235aa867b63e2dc1'))
    for (const bad of ['', 'a\u0000b', '../x', 'x'.repeat(129), 'a b', '%00']) assert.ok(!isUploadId(bad), JSON.stringify(bad))
  })
})
