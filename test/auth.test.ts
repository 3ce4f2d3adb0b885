/**
 * With auth on, every upload and status request needs a bearer JWT; its subject owns the
 * upload and nobody else can see or touch it (404, never 403: ids must not leak).
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import {once} from 'node:events'
import type {AddressInfo} from 'node:net'
import {after, before, describe, it} from 'node:test'
import {exportJWK, generateKeyPair, SignJWT} from 'jose'
import {PATCH_HEADERS, request, TUS} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

const SECRET = 'an-hs256-secret-that-is-long-enough-0123456789'

async function hs256(sub: string, secret = SECRET, expiresIn = '5m'): Promise<string> {
  return new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject(sub).setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(secret))
}

describe('auth with an HS256 secret', () => {
  let node: TestNode
  let alice: Record<string, string>
  let bob: Record<string, string>
  before(async () => {
    node = await startTestNode('postgres', {authJwtSecret: SECRET})
    alice = {Authorization: `Bearer ${await hs256('alice')}`}
    bob = {Authorization: `Bearer ${await hs256('bob')}`}
  })
  after(() => node.stop())

  it('refuses uploads and status requests without a valid token (401 with a challenge)', async () => {
    const noToken = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5'}})
    assert.equal(noToken.status, 401)
    assert.match(String(noToken.headers['www-authenticate']), /^Bearer/)
    const bad = [`Bearer ${await hs256('mallory', 'another-secret-that-is-long-enough-0123456789')}`, `Bearer ${await hs256('late', SECRET, '-1m')}`, 'Bearer not.a.jwt', 'Basic dXNlcjpwYXNz']
    for (const authorization of bad) {
      const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', Authorization: authorization}})
      assert.equal(res.status, 401, authorization)
    }
    assert.equal((await fetch(`${node.url}/api/uploads`)).status, 401)
    assert.equal((await fetch(`${node.url}/healthz`)).status, 200, 'health stays open')
    const options = await request('OPTIONS', `${node.url}/files/`)
    assert.ok(options.status === 204 || options.status === 200, 'discovery and CORS preflight stay open')
  })

  it("makes the token's subject the owner, and hides the upload from everyone else", async () => {
    const created = await request('POST', `${node.url}/files/`, {headers: {...TUS, ...alice, 'Upload-Length': '6'}})
    assert.equal(created.status, 201)
    const url = String(created.headers.location)
    const id = new URL(url).pathname.split('/').pop()!
    assert.equal((await node.uploads.findById(id))?.owner, 'alice')

    assert.equal((await request('HEAD', url, {headers: {...TUS, ...bob}})).status, 404)
    assert.equal((await request('PATCH', url, {headers: {...PATCH_HEADERS, ...bob, 'Upload-Offset': '0'}, body: 'evil'})).status, 404)
    assert.equal((await request('DELETE', url, {headers: {...TUS, ...bob}})).status, 404)
    assert.equal((await fetch(`${node.url}/api/uploads/${id}`, {headers: bob})).status, 404)
    const bobsList = (await (await fetch(`${node.url}/api/uploads`, {headers: bob})).json()) as {uploads: unknown[]}
    assert.equal(bobsList.uploads.length, 0)
    assert.equal((await node.uploads.findById(id))?.bytesReceived, 0, "bob's PATCH wrote nothing")

    assert.equal((await request('PATCH', url, {headers: {...PATCH_HEADERS, ...alice, 'Upload-Offset': '0'}, body: 'abcdef'})).status, 204)
    const mine = (await (await fetch(`${node.url}/api/uploads/${id}`, {headers: alice})).json()) as {status: string; owner: string}
    assert.equal(mine.status, 'completed')
    const alicesList = (await (await fetch(`${node.url}/api/uploads`, {headers: alice})).json()) as {uploads: Array<{id: string}>}
    assert.deepEqual(alicesList.uploads.map((u) => u.id), [id])
  })
})

describe('auth with a JWKS URL', () => {
  let node: TestNode
  let jwks: http.Server
  let sign: (sub: string) => Promise<string>
  before(async () => {
    const {publicKey, privateKey} = await generateKeyPair('RS256')
    const jwk = {...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig'}
    jwks = http.createServer((_req, res) => res.writeHead(200, {'Content-Type': 'application/json'}).end(JSON.stringify({keys: [jwk]})))
    jwks.listen(0, '127.0.0.1')
    await once(jwks, 'listening')
    const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`
    sign = (sub) => new SignJWT({}).setProtectedHeader({alg: 'RS256', kid: 'k1'}).setSubject(sub).setExpirationTime('5m').sign(privateKey)
    node = await startTestNode('postgres', {authJwksUrl: url})
  })
  after(async () => {
    await node.stop()
    jwks.close()
  })

  it('accepts tokens signed by a key from the JWKS and refuses others', async () => {
    const ok = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', Authorization: `Bearer ${await sign('carol')}`}})
    assert.equal(ok.status, 201)
    const hs = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': '5', Authorization: `Bearer ${await hs256('carol')}`}})
    assert.equal(hs.status, 401)
  })
})
