import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {NonceWindow, openBodySeal, sealBody, signRequest, verifyRequest} from './cluster-signature.js'

const SECRET = 'a-cluster-secret-that-is-long-enough-000000'
const B = {id: 'node-b', incarnation: 1_700_000_000_123}
const request = {
  method: 'PUT',
  path: '/internal/replicas/u1/720p/seg1.ts?x=1',
  headers: {'x-artifact-sha256': 'ab'.repeat(32), 'x-artifact-size': '100', 'upload-offset': '0', 'content-length': '100', authorization: 'Bearer alice'} as Record<string, string>,
}

describe('cluster signatures', () => {
  it('verifies a request signed with the shared secret for this node, naming the sender', () => {
    const nonce = 'ef'.repeat(16)
    const verdict = verifyRequest(SECRET, signRequest(SECRET, 'node-a', B, request, Date.now(), nonce), request, B, new NonceWindow())
    assert.deepEqual(verdict, {ok: true, node: 'node-a', nonce})
  })

  it('refuses another secret, a tampered path, query, header, Authorization or method, and a missing or malformed signature', () => {
    const header = signRequest(SECRET, 'node-a', B, request)
    const refused = (r: typeof request, h: string | undefined = header, secret = SECRET) => assert.equal(verifyRequest(secret, h, r, B).ok, false)
    refused(request, header, 'another-secret-that-is-long-enough-0000000')
    refused({...request, path: '/internal/replicas/u2/720p/seg1.ts?x=1'})
    refused({...request, path: '/internal/replicas/u1/720p/seg1.ts?x=2'})
    refused({...request, method: 'DELETE'})
    refused({...request, headers: {...request.headers, 'upload-offset': '50'}})
    refused({...request, headers: {...request.headers, authorization: 'Bearer mallory'}})
    refused({...request, headers: {...request.headers, 'content-digest': 'sha-256=:AAAA:'}})
    refused(request, header.replace('node=node-a', 'node=node-c'))
    assert.equal(verifyRequest(SECRET, undefined, request, B).ok, false)
    refused(request, 'v1 garbage')
  })

  it('refuses a signature older than five minutes', () => {
    const header = signRequest(SECRET, 'node-a', B, request, Date.now() - 6 * 60_000)
    assert.deepEqual(verifyRequest(SECRET, header, request, B), {ok: false, reason: 'cluster signature expired'})
  })

  it('accepts a nonce once (a replay within the window is refused)', () => {
    const nonces = new NonceWindow()
    const header = signRequest(SECRET, 'node-a', B, request)
    assert.equal(verifyRequest(SECRET, header, request, B, nonces).ok, true)
    assert.deepEqual(verifyRequest(SECRET, header, request, B, nonces), {ok: false, reason: 'cluster signature replayed (nonce already seen)'})
    assert.equal(verifyRequest(SECRET, signRequest(SECRET, 'node-a', B, request), request, B, nonces).ok, true, 'a fresh signature of the same request passes')
  })

  it('refuses a signature for another node, or for an earlier life of this one', () => {
    const header = signRequest(SECRET, 'node-a', B, request)
    assert.deepEqual(verifyRequest(SECRET, header, request, {id: 'node-c', incarnation: B.incarnation}), {ok: false, reason: 'cluster signature is for another node'})
    assert.deepEqual(verifyRequest(SECRET, header, request, {id: 'node-b', incarnation: B.incarnation + 5000}), {ok: false, reason: 'cluster signature is for an earlier life of this node'})
  })

  it('forgets nonces once their signatures have expired', () => {
    const nonces = new NonceWindow()
    const start = Date.now()
    for (let i = 0; i < 100; i++) nonces.claim(i.toString(16).padStart(32, '0'), Math.floor(start / 1000), start)
    assert.equal(nonces.size, 100)
    nonces.claim('f'.repeat(32), Math.floor(start / 1000) + 400, start + 400_000)
    assert.equal(nonces.size, 1)
  })
})

describe('body seals', () => {
  const sha256 = Buffer.alloc(32, 7)
  const nonce = 'ab'.repeat(16)
  it('opens a seal made with the secret for the same request nonce, and says how the body ended', () => {
    assert.deepEqual(openBodySeal('s3cret', nonce, sealBody('s3cret', nonce, {sha256, end: 'cut'})), {sha256, end: 'cut'})
  })
  it('refuses a seal of another secret, another nonce, a changed digest or end, or none', () => {
    const seal = sealBody('s3cret', nonce, {sha256, end: 'complete'})
    assert.equal(openBodySeal('other', nonce, seal), undefined)
    assert.equal(openBodySeal('s3cret', 'cd'.repeat(16), seal), undefined)
    assert.equal(openBodySeal('s3cret', nonce, seal.replace('end=complete', 'end=cut')), undefined)
    assert.equal(openBodySeal('s3cret', nonce, seal.replace(/:[A-Za-z0-9+/]/, ':Z')), undefined)
    assert.equal(openBodySeal('s3cret', nonce, undefined), undefined)
  })
})
