/**
 * Event streams (issue 14, point 6): 1500 open streams are fed by one change listener per node,
 * not by a database poll each, so they neither load the database nor slow the status API; and
 * one caller holds at most SSE_MAX_PER_SUBJECT of them across the cluster.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import pg from 'pg'
import {SignJWT} from 'jose'
import {createUpload, PATCH_HEADERS, request} from '../support/http.js'
import {freshSchema, startTestNode, type TestNode} from '../support/node.js'
import {spawnNode, type NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'

const STREAMS = 1500
const UPLOADS = 10

interface OpenStream {
  uploadId: string
  text: string
  req: http.ClientRequest
}

const agent = new http.Agent({keepAlive: false, maxSockets: Infinity})

function openStream(base: string, uploadId: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const stream: OpenStream = {uploadId, text: '', req: undefined as never}
    stream.req = http.get(`${base}/api/uploads/${uploadId}/events`, {agent, headers}, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        return reject(new Error(`stream answered ${res.statusCode}`))
      }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        stream.text += chunk
        if (stream.text.includes('event: status')) resolve(stream)
      })
      res.on('error', () => {})
    })
    stream.req.on('error', reject)
  })
}

async function p99(url: string, n = 300): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const started = process.hrtime.bigint()
    const res = await request('GET', url)
    times.push(Number(process.hrtime.bigint() - started) / 1e6)
    assert.equal(res.status, 200)
  }
  times.sort((x, y) => x - y)
  return times[Math.floor(n * 0.99)]!
}

async function waitFor(check: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe(`${STREAMS} event streams on one node (PostgreSQL, a real process)`, () => {
  let node: NodeProcess
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let dataDir: string
  let db: pg.Client
  const streams: OpenStream[] = []
  const uploadUrls: string[] = []

  before(async () => {
    schema = await freshSchema()
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ingest-sse-'))
    node = await spawnNode({DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema.schema, DATA_DIR: dataDir, EVENTS_POLL_INTERVAL: '500ms'})
    db = new pg.Client({connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema.schema}`})
    await db.connect()
    for (let i = 0; i < UPLOADS; i++) uploadUrls.push(await createUpload(node.url, 5))
  })
  after(async () => {
    for (const s of streams) s.req.destroy()
    await node?.kill('SIGTERM')
    await db?.end()
    await schema?.drop()
    if (dataDir) await rm(dataDir, {recursive: true, force: true})
  })

  const idOf = (url: string) => new URL(url).pathname.split('/').pop()!
  /** Index reads and scans of the tables a stream reads (this test's schema only). */
  const reads = async () => {
    const {rows} = await db.query(
      `SELECT sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::bigint AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname IN ('outbox', 'jobs', 'uploads')`,
      [schema.schema]
    )
    return Number(rows[0].n)
  }

  it('keeps the status API p99 within 2x, reads the database no more while streams idle, and feeds every stream a change', async (t) => {
    const statusUrl = `${node.url}/api/uploads/${idOf(uploadUrls[0]!)}`
    await p99(statusUrl, 50) // warm up
    const baseline = await p99(statusUrl)

    for (let i = 0; i < STREAMS; i += 100) {
      const batch = await Promise.all(Array.from({length: 100}, (_, j) => openStream(node.url, idOf(uploadUrls[(i + j) % UPLOADS]!))))
      streams.push(...batch)
    }
    assert.equal(streams.length, STREAMS)

    // Idle streams: stats reach pg_stat_user_tables within about a second; the window is 3 s.
    await new Promise((r) => setTimeout(r, 1500))
    const before = await reads()
    await new Promise((r) => setTimeout(r, 3000))
    const idleReads = (await reads()) - before
    assert.ok(idleReads < 100, `${idleReads} table reads in 3 s of ${STREAMS} idle streams (a poll per stream makes thousands)`)

    const loaded = await p99(statusUrl)
    t.diagnostic(`status API p99: ${baseline.toFixed(1)} ms without streams, ${loaded.toFixed(1)} ms with ${STREAMS}; ${idleReads} table reads in 3 s idle`)
    assert.ok(loaded <= 2 * Math.max(baseline, 2), `status API p99 ${loaded.toFixed(1)} ms with ${STREAMS} streams, ${baseline.toFixed(1)} ms without`)

    // One change reaches every stream of that upload.
    const target = uploadUrls[1]!
    const watching = streams.filter((s) => s.uploadId === idOf(target))
    assert.equal((await request('PATCH', target, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'hello'})).status, 204)
    await waitFor(() => watching.every((s) => s.text.includes('event: upload.completed') && s.text.includes('"status":"completed"')), 15_000, 'every stream to see the completion')
  })
})

describe('SSE_MAX_PER_SUBJECT', () => {
  const SECRET = 'sse-test-secret-that-is-long-enough-000000'
  let node: TestNode
  before(async () => {
    node = await startTestNode('postgres', {authJwtSecret: SECRET, sseMaxPerSubject: 3})
  })
  after(() => node?.stop())

  it('refuses a caller its fourth open stream with 429 and Retry-After, counts per subject, and frees the slot when one closes', async () => {
    const auth = async (sub: string) => ({Authorization: `Bearer ${await new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject(sub).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET))}`})
    const alice = await auth('alice')
    const url = await createUpload(node.url, 5, alice)
    const id = new URL(url).pathname.split('/').pop()!
    const open = await Promise.all([0, 1, 2].map(() => openStream(node.url, id, alice)))
    // fetch, not request(): a stream that is let through never ends.
    const refused = await fetch(`${node.url}/api/uploads/${id}/events`, {headers: alice, signal: AbortSignal.timeout(5000)})
    assert.equal(refused.status, 429)
    assert.match(String(refused.headers.get('retry-after')), /^\d+$/)
    assert.match(await refused.text(), /SSE_MAX_PER_SUBJECT/)

    const bob = await auth('bob')
    const bobsUrl = await createUpload(node.url, 5, bob)
    const bobs = await openStream(node.url, new URL(bobsUrl).pathname.split('/').pop()!, bob)
    bobs.req.destroy()

    open[0]!.req.destroy()
    const rows = async () => Number(((await node.db.query(`SELECT count(*)::int AS n FROM event_streams WHERE caller = 'sub:alice'`)) as Array<{n: number}>)[0]!.n)
    await waitFor(async () => (await rows()) === 2, 5000, 'the closed stream to be released')
    const again = await openStream(node.url, id, alice)
    for (const s of [...open, again]) s.req.destroy()
  })

  it('does not count the streams of a node that left the live set', async () => {
    await node.db.query(`INSERT INTO nodes (id, url, started_at, last_seen_at) VALUES ('gone', 'http://127.0.0.1:9', now(), now() - interval '1 hour')`)
    await node.db.query(`INSERT INTO event_streams (caller, node_id) SELECT 'sub:carol', 'gone' FROM generate_series(1, 3)`)
    const carol = {Authorization: `Bearer ${await new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject('carol').setExpirationTime('10m').sign(new TextEncoder().encode(SECRET))}`}
    const url = await createUpload(node.url, 5, carol)
    const stream = await openStream(node.url, new URL(url).pathname.split('/').pop()!, carol)
    stream.req.destroy()
  })
})
