/**
 * Cluster signatures (issue 14, point 7): a signed request between nodes is accepted once, by
 * the node (and the life of that node) it was signed for, with its query and the forwarded
 * Authorization covered. Two nodes in process over loopback, sharing PostgreSQL.
 */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import {createHash, randomBytes} from 'node:crypto'
import http from 'node:http'
import {sealBody, signRequest} from '../../src/cluster/cluster-signature.js'
import {createUpload, PATCH_HEADERS, request, TUS} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'

const SECRET = 'cluster-replay-secret-that-is-long-enough-0'

describe('signed requests between nodes cannot be replayed or redirected', () => {
  let a: TestNode
  let b: TestNode
  let uploadUrl: string
  let uploadId: string
  const target = (node: TestNode) => ({id: node.config.nodeId, incarnation: node.cluster.cluster.registry.incarnation!})
  const sign = (node: TestNode, method: string, path: string, headers: Record<string, string> = {}) =>
    signRequest(SECRET, 'peer-x', target(node), {method, path, headers})

  before(async () => {
    a = await startTestNode('postgres', {clusterSecret: SECRET, nodeId: 'replay-a'})
    b = await startTestNode('postgres', {clusterSecret: SECRET, nodeId: 'replay-b', databaseSchema: a.config.databaseSchema})
    uploadUrl = await createUpload(a.url, 5)
    uploadId = new URL(uploadUrl).pathname.split('/').pop()!
    assert.equal((await request('PATCH', uploadUrl, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'hello'})).status, 204)
  })
  after(async () => {
    await b?.stop()
    await a?.stop()
  })

  it('accepts a signed internal request once and refuses the same request sent again', async () => {
    const path = `/internal/uploads/${uploadId}/content`
    const headers = {'x-cluster-signature': sign(a, 'GET', path)}
    const first = await request('GET', `${a.url}${path}`, {headers})
    assert.equal(first.status, 200)
    assert.equal(first.body, 'hello')
    const replay = await request('GET', `${a.url}${path}`, {headers})
    assert.equal(replay.status, 401)
    assert.match(replay.body, /replayed/)
  })

  it('refuses a signature made for another node', async () => {
    const path = `/internal/uploads/${uploadId}/content`
    const res = await request('GET', `${b.url}${path}`, {headers: {'x-cluster-signature': sign(a, 'GET', path)}})
    assert.equal(res.status, 401)
    assert.match(res.body, /another node/)
  })

  it('covers the query and the forwarded Authorization', async () => {
    const path = `/internal/uploads/${uploadId}/content?part=1`
    const query = await request('GET', `${a.url}/internal/uploads/${uploadId}/content?part=2`, {headers: {'x-cluster-signature': sign(a, 'GET', path)}})
    assert.equal(query.status, 401)
    const head = `/files/${uploadId}`
    const signature = sign(a, 'HEAD', head, {authorization: 'Bearer token-of-alice'})
    const swapped = await request('HEAD', `${a.url}${head}`, {headers: {...TUS, authorization: 'Bearer token-of-mallory', 'x-cluster-signature': signature}})
    assert.equal(swapped.status, 401, 'a forwarded request whose signature does not hold is refused, not served as a client request')
    const honest = await request('HEAD', `${a.url}${head}`, {headers: {...TUS, authorization: 'Bearer token-of-alice', 'x-cluster-signature': sign(a, 'HEAD', head, {authorization: 'Bearer token-of-alice'})}})
    assert.equal(honest.status, 200)
  })

  it('still forwards a client through a non-owner, each forward signed afresh', async () => {
    const url = await createUpload(a.url, 6)
    const viaB = url.replace(a.url, b.url)
    assert.equal((await request('PATCH', viaB, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})).status, 204)
    assert.equal((await request('PATCH', viaB, {headers: {...PATCH_HEADERS, 'Upload-Offset': '3'}, body: 'def'})).status, 204)
    const head = await request('HEAD', viaB, {headers: TUS})
    assert.equal(head.headers['upload-offset'], '6')
  })

  it('takes a forwarded body only with its seal: a missing, forged or other request\'s seal keeps nothing', async () => {
    const url = await createUpload(a.url, 5)
    const path = new URL(url).pathname
    const body = Buffer.from('hello')
    const sha256 = createHash('sha256').update(body).digest()
    const send = (trailer: (nonce: string) => Record<string, string>) => {
      const nonce = randomBytes(16).toString('hex')
      const headers = {...PATCH_HEADERS, 'Upload-Offset': '0', 'Transfer-Encoding': 'chunked', 'X-Cluster-Content-Length': '5'}
      const lowered = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
      const signature = signRequest(SECRET, 'peer-x', target(a), {method: 'PATCH', path, headers: lowered}, Date.now(), nonce)
      return new Promise<{status: number; body: string}>((resolve, reject) => {
        const req = http.request(`${a.url}${path}`, {method: 'PATCH', headers: {...headers, 'x-cluster-signature': signature}}, (res) => {
          let text = ''
          res.on('data', (d: Buffer) => (text += d.toString()))
          res.on('end', () => resolve({status: res.statusCode!, body: text}))
        })
        req.on('error', reject)
        req.write(body)
        const trailers = trailer(nonce)
        if (Object.keys(trailers).length > 0) req.addTrailers(trailers)
        req.end()
      })
    }
    const offset = async () => (await request('HEAD', url, {headers: TUS})).headers['upload-offset']
    for (const [name, trailer] of [
      ['no seal', () => ({})],
      ['a forged seal', () => ({'X-Cluster-Content-Digest': sealBody('another-secret-entirely-0123456789', 'cd'.repeat(16), {sha256, end: 'complete'})})],
      ["another request's seal", () => ({'X-Cluster-Content-Digest': sealBody(SECRET, 'cd'.repeat(16), {sha256, end: 'complete'})})],
    ] as const) {
      const res = await send(trailer)
      assert.equal(res.status, 400, `${name}: ${res.body}`)
      assert.match(res.body, /without a valid seal/, name)
      assert.equal(await offset(), '0', `${name}: nothing kept`)
    }
    const sealed = await send((nonce) => ({'X-Cluster-Content-Digest': sealBody(SECRET, nonce, {sha256, end: 'complete'})}))
    assert.equal(sealed.status, 204, sealed.body)
    assert.equal(await offset(), '5')
  })

  it('refuses, after a restart, a signature made for the life before', async () => {
    const path = `/internal/uploads/${uploadId}/content`
    const headers = {'x-cluster-signature': sign(a, 'GET', path)}
    const dataDir = a.dataDir
    await a.close()
    // The first life's settings, its data directory and schema: the same node, started again.
    const firstLife = a
    const second = await startTestNode('postgres', {clusterSecret: SECRET, nodeId: 'replay-a', databaseSchema: b.config.databaseSchema, dataDir})
    const stopSecond = second.stop
    a = Object.assign(second, {
      async stop() {
        await stopSecond()
        await firstLife.stop() // its schema and data directory
      },
    })
    const res = await request('GET', `${a.url}${path}`, {headers})
    assert.equal(res.status, 401)
    assert.match(res.body, /earlier life/)
  })
})
