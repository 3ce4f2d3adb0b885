/**
 * Request paths are taken as sent (curl --path-as-is): dot segments, encoded or not, and empty
 * segments are refused (400) on every route family before any routing, so no path reaches an
 * upload through @tus/server's own reading of it, around the final-upload rules and forwarding.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, TUS, type RawResponse} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'

/** A request whose path goes on the wire exactly as given (new URL() would resolve the dots). */
function rawRequest(base: string, method: string, rawPath: string, headers: Record<string, string | number> = {}, body?: string): Promise<RawResponse> {
  const {hostname, port} = new URL(base)
  return new Promise((resolve, reject) => {
    const req = http.request({host: hostname, port, path: rawPath, method, headers}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks).toString('utf8')}))
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer: ${method} ${rawPath}`)))
    req.on('error', reject)
    req.end(body)
  })
}

describe('paths with dot or empty segments', {timeout: 60_000}, () => {
  let node: TestNode
  let id: string
  before(async () => {
    node = await startTestNode('postgres', {clusterSecret: 'paths-test-cluster-secret-0123456789abcdef', adminToken: 'paths-admin-token'})
    id = new URL(await createUpload(node.url, 10)).pathname.split('/').pop()!
  })
  after(() => node.stop())

  it('refuses them with 400 and a message on /files, whatever the method, and writes nothing', async () => {
    const paths = [`/files/x/../${id}`, `/files/x/%2e%2e/${id}`, `/files/x/%2E%2e/${id}`, `/files/x/.%2e/${id}`, `/files/./${id}`, `/files/${id}/.`, `/files/x/..%2f${id}`, `/files/x/..%5c${id}`, `//files/${id}`, `/files//${id}`, `/files/..`, `/files/%2e%2e`]
    for (const path of paths) {
      for (const [method, headers, body] of [
        ['HEAD', TUS, undefined],
        ['GET', {}, undefined],
        ['DELETE', TUS, undefined],
        ['PATCH', {...PATCH_HEADERS, 'Upload-Offset': 0}, 'evil'],
      ] as const) {
        const res = await rawRequest(node.url, method, path, headers, body)
        assert.equal(res.status, 400, `${method} ${path}: ${res.status} ${res.body}`)
        if (method !== 'HEAD') assert.match(res.body, /segments/, `${method} ${path}`)
      }
    }
    const row = await node.uploads.findById(id)
    assert.equal(row?.status, 'uploading')
    assert.equal(row?.bytesReceived, 0, 'no PATCH wrote through a crafted path')
  })

  it('refuses them on every other route family too', async () => {
    const paths = [`/api/uploads/../uploads/${id}`, `/api/uploads/%2e%2e/${id}`, `/api//uploads`, `/media/${id}/../../uploads/${id}`, `/media/%2e%2e/x`, `/admin/../api/uploads`, `/admin//uploads`, `/internal/./uploads/${id}/content`, `/internal/uploads/%2e%2e/${id}/content`, `/healthz/..`, '/./healthz']
    for (const path of paths) {
      const res = await rawRequest(node.url, 'GET', path, {Authorization: 'Bearer paths-admin-token'})
      assert.equal(res.status, 400, `${path}: ${res.status} ${res.body}`)
      assert.match(JSON.parse(res.body).error, /segments/, path)
    }
  })

  it('answers a path deeper than /files/<id> 404, never with the upload its last segment names', async () => {
    const res = await rawRequest(node.url, 'HEAD', `/files/x/${id}`, TUS)
    assert.equal(res.status, 404)
    const patch = await rawRequest(node.url, 'PATCH', `/files/x/${id}`, {...PATCH_HEADERS, 'Upload-Offset': 0}, 'evil')
    assert.equal(patch.status, 404)
    assert.equal((await node.uploads.findById(id))?.bytesReceived, 0)
  })

  it('still serves plain paths, a trailing slash included', async () => {
    assert.equal((await rawRequest(node.url, 'HEAD', `/files/${id}`, TUS)).status, 200)
    assert.equal((await rawRequest(node.url, 'HEAD', `/files/${id}/`, TUS)).status, 200)
    assert.equal((await rawRequest(node.url, 'POST', '/files/', {...TUS, 'Upload-Length': 3})).status, 201)
    assert.equal((await rawRequest(node.url, 'GET', `/api/uploads/${id}`)).status, 200)
    assert.equal((await rawRequest(node.url, 'GET', '/healthz')).status, 200)
  })
})
