import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {signRequest, verifyRequest} from './cluster-signature.js'

const SECRET = 'a-cluster-secret-that-is-long-enough-000000'
const request = {method: 'PUT', path: '/internal/replicas/u1/720p/seg1.ts', headers: {'x-artifact-sha256': 'ab'.repeat(32), 'x-artifact-size': '100', 'upload-offset': '0'}}

describe('cluster signatures', () => {
  it('verifies a request signed with the shared secret, naming the sender', () => {
    const verdict = verifyRequest(SECRET, signRequest(SECRET, 'node-a', request), request)
    assert.deepEqual(verdict, {ok: true, node: 'node-a'})
  })

  it('refuses another secret, a tampered path, header or method, and a missing or malformed signature', () => {
    const header = signRequest(SECRET, 'node-a', request)
    assert.equal(verifyRequest('another-secret-that-is-long-enough-0000000', header, request).ok, false)
    assert.equal(verifyRequest(SECRET, header, {...request, path: '/internal/replicas/u2/720p/seg1.ts'}).ok, false)
    assert.equal(verifyRequest(SECRET, header, {...request, method: 'DELETE'}).ok, false)
    assert.equal(verifyRequest(SECRET, header, {...request, headers: {...request.headers, 'upload-offset': '50'}}).ok, false)
    assert.equal(verifyRequest(SECRET, header.replace('node=node-a', 'node=node-b'), request).ok, false)
    assert.equal(verifyRequest(SECRET, undefined, request).ok, false)
    assert.equal(verifyRequest(SECRET, 'v1 garbage', request).ok, false)
  })

  it('refuses a signature older than five minutes (replay)', () => {
    const header = signRequest(SECRET, 'node-a', request, Date.now() - 6 * 60_000)
    assert.deepEqual(verifyRequest(SECRET, header, request), {ok: false, reason: 'cluster signature expired'})
  })
})
