/**
 * Tokens, query parameters and CORS: a JWT without `exp` is refused unless the operator allows
 * it; no query parameter of the status or admin API answers a 5xx, whatever its bytes (each 4xx
 * says what was wrong); operators' and peers' routes answer no CORS at all.
 */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import {SignJWT} from 'jose'
import {createUpload, request, TUS} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'

const SECRET = 'auth-and-api-test-secret-0123456789-abcdefgh'
const ADMIN = 'auth-and-api-admin-token'
const key = new TextEncoder().encode(SECRET)
const withExpiry = (sub: string) => new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(key)
const withoutExpiry = (sub: string) => new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject(sub).setIssuedAt().sign(key)
const b64json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

describe('bearer tokens without exp', {timeout: 60_000}, () => {
  let strict: TestNode
  let lenient: TestNode
  before(async () => {
    strict = await startTestNode('postgres', {authJwtSecret: SECRET})
    lenient = await startTestNode('embedded', {authJwtSecret: SECRET, authAllowNoExpiry: true})
  })
  after(async () => {
    await strict?.stop()
    await lenient?.stop()
  })

  it('are refused with 401 and a message saying why', async () => {
    const token = await withoutExpiry('alice')
    for (const [method, path, headers] of [
      ['POST', '/files/', {...TUS, 'Upload-Length': 5}],
      ['GET', '/api/uploads', {}],
    ] as const) {
      const res = await request(method, `${strict.url}${path}`, {headers: {...headers, Authorization: `Bearer ${token}`}})
      assert.equal(res.status, 401, `${method} ${path}`)
      assert.match(res.body, /no expiry \(exp\)/)
      assert.match(String(res.headers['www-authenticate']), /invalid_token/)
    }
    assert.equal((await request('GET', `${strict.url}/api/uploads`, {headers: {Authorization: `Bearer ${await withExpiry('alice')}`}})).status, 200, 'a token with exp passes')
  })

  it('are accepted with AUTH_ALLOW_NO_EXPIRY=true', async () => {
    const res = await request('POST', `${lenient.url}/files/`, {headers: {...TUS, 'Upload-Length': 5, Authorization: `Bearer ${await withoutExpiry('alice')}`}})
    assert.equal(res.status, 201, res.body)
  })
})

describe('query parameters of the status and admin APIs', {timeout: 120_000}, () => {
  let node: TestNode
  let alice: Record<string, string>
  const admin = {Authorization: `Bearer ${ADMIN}`}
  before(async () => {
    node = await startTestNode('postgres', {authJwtSecret: SECRET, adminToken: ADMIN, clusterSecret: 'auth-and-api-cluster-secret-0123456789abc'})
    alice = {Authorization: `Bearer ${await withExpiry('alice')}`}
    for (let i = 0; i < 3; i++) await createUpload(node.url, 10, alice)
  })
  after(() => node?.stop())

  it('answers a cursor with a NUL in its id, and since=99999999999d, with 400 and a message', async () => {
    const cursor = b64json({c: new Date().toISOString(), i: 'abc\u0000def'})
    const res = await request('GET', `${node.url}/api/uploads?cursor=${cursor}`, {headers: alice})
    assert.equal(res.status, 400, res.body)
    assert.match(JSON.parse(res.body).error, /cursor/)
    for (const path of ['/admin/uploads', '/admin/jobs']) {
      const since = await request('GET', `${node.url}${path}?since=99999999999d`, {headers: admin})
      assert.equal(since.status, 400, since.body)
      assert.match(JSON.parse(since.body).error, /since/)
    }
  })

  it('never answers a 5xx, whatever a query parameter holds', async () => {
    const hostile = [
      '', ' ', '%00', 'a%00b', '%ff', '%', '%zz', '-1', '0', '1.5', 'NaN', 'Infinity', '1e400', '9'.repeat(400), 'x'.repeat(5000),
      '99999999999d', '99999999999999999999y', '1e30ms', '-5m', '2024-13-45T99:99:99Z', '0000-01-01', '9999-12-31T23:59:59Z', '+275760-09-13T00:00:00.001Z', '2024-01-01%00',
      "'; DROP TABLE uploads; --", '%E8%A7%86%E9%A2%91', '%E2%80%A8', '%0d%0aX-Injected: 1', 'uploading&status=ready', 'a,b',
      b64json({c: 'x', i: 'y'}), b64json({c: new Date().toISOString(), i: 'abc\u0000def'}), b64json({c: new Date(8.64e15).toISOString(), i: 'a'}), b64json([1, 2]), b64json('x'), 'e30', '%7B%7D',
    ]
    const endpoints: Array<{path: string; params: string[]; headers: Record<string, string>}> = [
      {path: '/api/uploads', params: ['status', 'limit', 'cursor'], headers: alice},
      {path: '/admin/uploads', params: ['status', 'owner', 'since', 'limit'], headers: admin},
      {path: '/admin/jobs', params: ['status', 'kind', 'upload', 'since', 'limit'], headers: admin},
      {path: '/admin/dlq/transcode', params: ['limit'], headers: admin},
      {path: '/admin/nodes', params: ['x'], headers: admin},
    ]
    const failures: string[] = []
    for (const {path, params, headers} of endpoints) {
      for (const param of params) {
        for (const value of hostile) {
          const url = `${node.url}${path}?${param}=${value.replace(/[ #&']/g, encodeURIComponent)}`
          const res = await request('GET', url, {headers})
          if (res.status >= 500) failures.push(`${res.status} GET ${path}?${param}=${value.slice(0, 60)}: ${res.body.slice(0, 200)}`)
          else if (res.status >= 400 && !/"error":"[^"]+"/.test(res.body)) failures.push(`${res.status} without a message: ${path}?${param}=${value.slice(0, 60)}`)
        }
      }
    }
    // Path parameters of the same APIs, and the event stream's id.
    for (const value of hostile.filter((v) => v !== '' && !v.includes('&'))) {
      const id = value.replace(/[ #?/']/g, encodeURIComponent)
      for (const [path, headers] of [
        [`/api/uploads/${id}`, alice],
        [`/api/uploads/${id}/events`, alice],
        [`/admin/uploads/${id}`, admin],
        [`/admin/jobs/${id}`, admin],
        [`/admin/dlq/${id}`, admin],
      ] as const) {
        const res = await request('GET', `${node.url}${path}`, {headers})
        if (res.status >= 500) failures.push(`${res.status} GET ${path.slice(0, 80)}: ${res.body.slice(0, 200)}`)
      }
    }
    assert.deepEqual(failures, [])
  })
})

describe('CORS', {timeout: 60_000}, () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode('embedded', {adminToken: ADMIN, clusterSecret: 'auth-and-api-cluster-secret-0123456789abc'})
  })
  after(() => node?.stop())

  const corsHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((name) => name.startsWith('access-control-'))

  it('answers nothing of CORS on /admin and /internal, preflights included', async () => {
    const origin = {Origin: 'https://evil.example'}
    for (const path of ['/admin/uploads', '/admin', '/internal/uploads/abc/content']) {
      const get = await request('GET', `${node.url}${path}`, {headers: {...origin, Authorization: `Bearer ${ADMIN}`}})
      assert.deepEqual(corsHeaders(get.headers), [], `GET ${path}`)
      const preflight = await request('OPTIONS', `${node.url}${path}`, {headers: {...origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization'}})
      assert.deepEqual(corsHeaders(preflight.headers), [], `OPTIONS ${path}`)
    }
  })

  it('still answers CORS for the uploads and status API', async () => {
    const res = await request('GET', `${node.url}/api/uploads`, {headers: {Origin: 'https://app.example'}})
    assert.equal(res.headers['access-control-allow-origin'], '*')
    const preflight = await request('OPTIONS', `${node.url}/files/`, {headers: {Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST'}})
    assert.equal(preflight.headers['access-control-allow-origin'], '*')
  })
})
