/**
 * The tus 1.0.0 conformance table (test/support/tus-conformance.ts), one test per sentence of
 * the protocol text, run twice: against one node on the embedded database, then against three
 * nodes on PostgreSQL behind haproxy (round-robin: most requests land on a node that does not
 * hold the upload and are forwarded to its owner). Both runs must give the same answers.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {startHaproxy, type Haproxy} from './support/haproxy.js'
import {request} from './support/http.js'
import {freshSchema, startTestNode, type TestNode} from './support/node.js'
import {startProcessCluster, type ProcessCluster} from './support/process-cluster.js'
import {freePort, type NodeProcess} from './support/process-node.js'
import {TEST_DATABASE_URL} from './support/services.js'
import {Conformance, CONFORMANCE_CASES, type Observation} from './support/tus-conformance.js'

const MAX_SIZE = 1024 * 1024
const EXPIRY_MS = 5000
const answers = {single: new Map<string, Observation[]>(), cluster: new Map<string, Observation[]>()}
const title = (c: (typeof CONFORMANCE_CASES)[number]) => `${c.section}: "${c.sentence}"`

function runTable(run: keyof typeof answers, base: () => string): void {
  for (const c of CONFORMANCE_CASES) {
    it(title(c), async () => {
      const t = new Conformance({base: base(), maxSize: MAX_SIZE, expiryMs: EXPIRY_MS})
      try {
        await c.run(t)
      } finally {
        answers[run].set(title(c), t.observations)
      }
    })
  }
}

describe('tus 1.0.0 conformance, one node (embedded database)', () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode('embedded', {maxUploadSize: String(MAX_SIZE), uploadExpiry: `${EXPIRY_MS}ms`})
  })
  after(() => node.stop())
  runTable('single', () => node.url)
})

describe('tus 1.0.0 conformance, three nodes (PostgreSQL) behind haproxy', () => {
  const SECRET = 'conformance-cluster-secret-0123456789-abcdef'
  let root: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let cluster: ProcessCluster<NodeProcess> | undefined
  let lb: Haproxy

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'conformance-'))
    schema = await freshSchema()
    const lbPort = await freePort()
    const env = {
      DATABASE_URL: TEST_DATABASE_URL,
      DATABASE_SCHEMA: schema.schema,
      CLUSTER_SECRET: SECRET,
      PUBLIC_URL: `http://127.0.0.1:${lbPort}`,
      MAX_UPLOAD_SIZE: String(MAX_SIZE),
      UPLOAD_EXPIRY: `${EXPIRY_MS}ms`,
      NODE_HEARTBEAT_INTERVAL: '300ms',
      NODE_TTL: '3s',
      SHUTDOWN_TIMEOUT: '2s',
    }
    cluster = await startProcessCluster({nodes: 3, dir: root, env})
    lb = await startHaproxy(cluster.urls as [string, string, string], lbPort)
    // Round-robin reaches every node once haproxy's health checks see them all.
    const deadline = Date.now() + 20_000
    for (;;) {
      const seen = new Set<string>()
      for (let i = 0; i < 6; i++) seen.add(String((await request('OPTIONS', `${lb.url}/files/`).catch(() => undefined))?.headers['x-request-id']))
      if (seen.size === 6) break
      if (Date.now() > deadline) throw new Error('haproxy never saw every node healthy')
      await new Promise((r) => setTimeout(r, 200))
    }
  })
  after(async () => {
    await lb?.stop()
    await cluster?.kill()
    await schema?.drop()
    await rm(root, {recursive: true, force: true})
  })
  runTable('cluster', () => lb.url)
})

describe('tus 1.0.0 conformance: both runs', () => {
  it('give the same answers, request by request (status and protocol headers)', () => {
    assert.equal(answers.cluster.size, CONFORMANCE_CASES.length)
    for (const [name, single] of answers.single) assert.deepEqual(answers.cluster.get(name), single, name)
  })
})
