/**
 * What the fuzzer found, pinned down: a NUL (or any byte an upload id cannot hold) in an id or a
 * filter that reaches PostgreSQL as a query parameter made it refuse the query, and the node
 * answered 500. Such an id is unknown (404) and such a filter is invalid (400).
 */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import {request} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'

describe('ids and filters PostgreSQL cannot hold', () => {
  let node: TestNode
  const token = 'a'.repeat(32)
  before(async () => {
    node = await startTestNode('postgres', {adminToken: token})
  })
  after(async () => node?.stop())

  it('answers 404 for a status request whose id holds a NUL', async () => {
    for (const id of ['%00', 'abc%00.mp4']) assert.equal((await request('GET', `${node.url}/api/uploads/${id}`)).status, 404)
  })

  it('answers 404 or 400 for admin requests with a NUL in an id or a filter', async () => {
    const auth = {Authorization: `Bearer ${token}`}
    assert.equal((await request('GET', `${node.url}/admin/uploads/%00`, {headers: auth})).status, 404)
    assert.equal((await request('GET', `${node.url}/admin/uploads?owner=%00`, {headers: auth})).status, 400)
    assert.equal((await request('GET', `${node.url}/admin/jobs?upload=a%00`, {headers: auth})).status, 400)
    const body = JSON.stringify({uploadIds: ['\u0000']})
    assert.equal((await request('POST', `${node.url}/admin/requeue`, {headers: {...auth, 'Content-Type': 'application/json'}, body})).status, 400)
  })
})
