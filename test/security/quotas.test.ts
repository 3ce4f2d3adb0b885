/**
 * Limits per caller (issue 14, point 6): one client cannot reserve the node's disk or its
 * creation path. Counted in PostgreSQL, so they hold across nodes; 0 turns a limit off.
 */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import {SignJWT} from 'jose'
import {PATCH_HEADERS, request, TUS, type RawResponse} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'

const SECRET = 'quota-test-secret-that-is-long-enough-00000'
const token = (sub: string) => new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(new TextEncoder().encode(SECRET))
const bearer = async (sub: string) => ({Authorization: `Bearer ${await token(sub)}`})

const create = (base: string, headers: Record<string, string>, length: number | null = 10) =>
  request('POST', `${base}/files/`, {headers: {...TUS, ...headers, ...(length === null ? {'Upload-Defer-Length': '1'} : {'Upload-Length': String(length)})}})

function assertRefused(res: RawResponse, limit: string) {
  assert.equal(res.status, 429, `429 expected, got ${res.status} ${res.body}`)
  assert.match(String(res.headers['retry-after']), /^\d+$/)
  assert.ok(Number(res.headers['retry-after']) >= 1)
  assert.match(res.body, new RegExp(limit))
  assert.doesNotMatch(res.body, new RegExp(SECRET))
}

/** The counters are per clock minute: a test's creations must not straddle two. */
async function awayFromMinuteEdge() {
  const second = new Date().getUTCSeconds()
  if (second >= 50) await new Promise((r) => setTimeout(r, (61 - second) * 1000))
}

const unfinishedOf = async (node: TestNode, caller: string) =>
  Number(((await node.db.query(`SELECT count(*)::int AS n FROM uploads WHERE caller = $1 AND status = 'uploading'`, [caller])) as Array<{n: number}>)[0]!.n)

describe('limits per caller (PostgreSQL, two nodes)', () => {
  let a: TestNode
  let b: TestNode
  before(async () => {
    const limits = {authJwtSecret: SECRET, quotaUploadsInFlight: 5, quotaBytesInFlight: '1000', rateLimitCreations: 0, sseMaxPerSubject: 0}
    a = await startTestNode('postgres', {...limits, nodeId: 'quota-a'})
    b = await startTestNode('postgres', {...limits, nodeId: 'quota-b', databaseSchema: a.config.databaseSchema})
  })
  after(async () => {
    await b?.stop()
    await a?.stop()
  })

  it('refuses a caller its sixth unfinished upload with 429 and Retry-After, across both nodes, and others are not affected', async () => {
    const alice = await bearer('alice')
    for (const node of [a, b, a, b, a]) assert.equal((await create(node.url, alice)).status, 201)
    assertRefused(await create(b.url, alice), 'QUOTA_UPLOADS_IN_FLIGHT')
    assertRefused(await create(a.url, alice), 'QUOTA_UPLOADS_IN_FLIGHT')
    assert.equal(await unfinishedOf(a, 'sub:alice'), 5, 'no row for a refused creation')
    assert.equal((await create(a.url, await bearer('bob'))).status, 201, 'another subject still creates')
  })

  it('frees a slot when an upload finishes', async () => {
    const carol = await bearer('carol')
    const urls: string[] = []
    for (let i = 0; i < 5; i++) urls.push(new URL(String((await create(a.url, carol, 3)).headers.location), a.url).toString())
    assertRefused(await create(a.url, carol), 'QUOTA_UPLOADS_IN_FLIGHT')
    assert.equal((await request('PATCH', urls[0]!, {headers: {...PATCH_HEADERS, ...carol, 'Upload-Offset': '0'}, body: 'abc'})).status, 204)
    assert.equal((await create(b.url, carol)).status, 201)
  })

  it('counts declared bytes, and a deferred length by what it received, against QUOTA_BYTES_IN_FLIGHT', async () => {
    const dave = await bearer('dave')
    assert.equal((await create(a.url, dave, 600)).status, 201)
    assertRefused(await create(b.url, dave, 401), 'QUOTA_BYTES_IN_FLIGHT')
    assertRefused(await create(a.url, dave, 5000), 'QUOTA_BYTES_IN_FLIGHT')
    const deferred = await create(a.url, dave, null)
    assert.equal(deferred.status, 201)
    const url = new URL(String(deferred.headers.location), a.url).toString()
    assert.equal((await request('PATCH', url, {headers: {...PATCH_HEADERS, ...dave, 'Upload-Offset': '0'}, body: 'x'.repeat(300)})).status, 204)
    assertRefused(await create(a.url, dave, 101), 'QUOTA_BYTES_IN_FLIGHT')
    assert.equal((await create(a.url, dave, 100)).status, 201)
  })

  it('covers partial and final concatenation and the IETF draft creation', async () => {
    const erin = await bearer('erin')
    const partial = await create(a.url, {...erin, 'Upload-Concat': 'partial'}, 5)
    assert.equal(partial.status, 201)
    for (let i = 0; i < 4; i++) assert.equal((await create(a.url, erin, 1)).status, 201)
    assertRefused(await create(a.url, {...erin, 'Upload-Concat': 'partial'}, 5), 'QUOTA_UPLOADS_IN_FLIGHT')
    const final = await request('POST', `${a.url}/files/`, {headers: {...TUS, ...erin, 'Upload-Concat': `final;${partial.headers.location}`}})
    assertRefused(final, 'QUOTA_UPLOADS_IN_FLIGHT')
    const draft = await request('POST', `${a.url}/files/`, {headers: {...erin, 'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?1', 'Content-Type': 'video/mp4'}, body: 'abc'})
    assertRefused(draft, 'QUOTA_UPLOADS_IN_FLIGHT')
    assert.equal(await unfinishedOf(a, 'sub:erin'), 5)
  })

  it('lets a concurrent burst of 200 creations overshoot the quota by at most the connection pool, never answering 500', async () => {
    const frank = await bearer('frank')
    const answers = await Promise.all(Array.from({length: 200}, (_, i) => create(i % 2 ? a.url : b.url, frank, 1)))
    const statuses = answers.map((r) => r.status)
    assert.deepEqual([...new Set(statuses)].sort(), [201, 429])
    const created = statuses.filter((s) => s === 201).length
    assert.equal(await unfinishedOf(a, 'sub:frank'), created)
    // Two nodes, 20 connections each: at most 5 + 2 * 20 - 1 rows even if every statement raced.
    assert.ok(created >= 5 && created <= 44, `${created} created`)
  })
})

describe('creations per minute, per client address when auth is off', () => {
  for (const kind of ['postgres', 'embedded'] as const) {
    describe(kind, () => {
      let node: TestNode
      before(async () => {
        node = await startTestNode(kind, {quotaUploadsInFlight: 0, quotaBytesInFlight: 0, rateLimitCreations: 10})
      })
      after(() => node?.stop())

      it('answers 429 with the seconds left in the minute past RATE_LIMIT_CREATIONS', async () => {
        await awayFromMinuteEdge()
        for (let i = 0; i < 10; i++) assert.equal((await create(node.url, {})).status, 201)
        const refused = await create(node.url, {})
        assertRefused(refused, 'RATE_LIMIT_CREATIONS')
        assert.ok(Number(refused.headers['retry-after']) <= 60)
        const draft = await request('POST', `${node.url}/files/`, {headers: {'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?1'}, body: 'abc'})
        assertRefused(draft, 'RATE_LIMIT_CREATIONS')
      })

      it('counts the forwarded client address behind a trusted proxy', async () => {
        // This node does not trust proxies: X-Forwarded-For changes nothing.
        assertRefused(await create(node.url, {'X-Forwarded-For': '203.0.113.9'}), 'RATE_LIMIT_CREATIONS')
      })
    })
  }

  it('with TRUST_PROXY, each forwarded client has its own budget', async () => {
    const node = await startTestNode('embedded', {trustProxy: true, quotaUploadsInFlight: 0, quotaBytesInFlight: 0, rateLimitCreations: 2})
    try {
      await awayFromMinuteEdge()
      for (let i = 0; i < 2; i++) assert.equal((await create(node.url, {'X-Forwarded-For': '203.0.113.1'})).status, 201)
      assertRefused(await create(node.url, {'X-Forwarded-For': '203.0.113.1'}), 'RATE_LIMIT_CREATIONS')
      assert.equal((await create(node.url, {'X-Forwarded-For': '203.0.113.2'})).status, 201)
      // A client cannot pick its own key by prepending an address: the proxy's entry is the last.
      assertRefused(await create(node.url, {'X-Forwarded-For': '198.51.100.7, 203.0.113.1'}), 'RATE_LIMIT_CREATIONS')
    } finally {
      await node.stop()
    }
  })

  it('the in-flight quota holds on the embedded database too', async () => {
    const node = await startTestNode('embedded', {quotaUploadsInFlight: 3, quotaBytesInFlight: '1GiB', rateLimitCreations: 0})
    try {
      const answers = await Promise.all(Array.from({length: 20}, () => create(node.url, {})))
      assert.equal(answers.filter((r) => r.status === 201).length, 3, 'one session: exact')
      assertRefused(answers.find((r) => r.status !== 201)!, 'QUOTA_UPLOADS_IN_FLIGHT')
    } finally {
      await node.stop()
    }
  })
})
