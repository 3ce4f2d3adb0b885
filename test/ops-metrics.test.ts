/**
 * /metrics against a real node on PostgreSQL: after an upload, an expiry and a job, the counters,
 * the database gauges and the latency histograms say what happened; each node has its own
 * registry; METRICS_TOKEN guards the endpoint.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import pino from 'pino'
import {loadConfig} from '../src/config/index.js'
import {Outcome} from '../src/jobs/outcome.js'
import {JobRegistry} from '../src/jobs/registry.js'
import {startNode, type RunningNode} from '../src/node.js'
import {waitFor} from './support/pipeline-support.js'
import {createUpload, PATCH_HEADERS, request} from './support/http.js'
import {freshSchema} from './support/node.js'
import {TEST_DATABASE_URL} from './support/services.js'

/** The value of one sample in Prometheus text format, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]))
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3])
  }
  return undefined
}

interface Started {
  node: RunningNode
  stop(): Promise<void>
}

async function start(overrides: Parameters<typeof loadConfig>[1], registry = new JobRegistry()): Promise<Started> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ingest-ops-'))
  const schema = await freshSchema()
  const config = loadConfig(
    {},
    {host: '127.0.0.1', port: 0, dataDir, logLevel: 'silent', expirySweepInterval: 0, retentionInterval: 0, shutdownTimeout: 2000, outboxPollInterval: 50, databaseUrl: TEST_DATABASE_URL, databaseSchema: schema.schema, ...overrides}
  )
  const node = await startNode(config, pino({level: 'silent'}), {registry})
  return {
    node,
    async stop() {
      await node.close()
      await schema.drop()
      await rm(dataDir, {recursive: true, force: true})
    },
  }
}

describe('metrics at /metrics', {timeout: 60_000}, () => {
  let a: Started
  let b: Started

  before(async () => {
    const registry = new JobRegistry().register('snapshot', async () => Outcome.succeeded())
    a = await start({nodeId: 'ops-a', uploadExpiry: '2s'}, registry)
    b = await start({nodeId: 'ops-b', metricsToken: 'metrics-token-for-the-test'})
  })

  after(async () => {
    await a?.stop()
    await b?.stop()
  })

  test('an upload, an expiry and a job show in the counters, the gauges and the histograms', async () => {
    const {node} = a
    const url = await createUpload(node.url, 10)
    assert.equal((await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'hello'})).status, 204)
    assert.equal((await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '5'}, body: 'world'})).status, 204)
    const id = url.split('/').pop()!

    const abandoned = await createUpload(node.url, 10)
    assert.equal((await request('PATCH', abandoned, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})).status, 204)
    // Past the 2 s expiry (long enough that a loaded machine still gets the PATCHes above in).
    await new Promise((resolve) => setTimeout(resolve, 2200))
    await node.sweeper.sweep()

    await waitFor('the snapshot job to succeed', async () => (await node.pipeline.jobs.find(id, 'snapshot'))?.status === 'succeeded')
    node.metrics.replication.observeLag('ops-b', 2.5)

    const res = await request('GET', `${node.url}/metrics`)
    assert.equal(res.status, 200)
    assert.match(String(res.headers['content-type']), /^text\/plain/)
    const text = res.body
    const node_ = {node: 'ops-a'}

    assert.equal(sample(text, 'ingest_uploads_created_total', node_), 2)
    assert.equal(sample(text, 'ingest_uploads_completed_total', node_), 1)
    assert.equal(sample(text, 'ingest_uploads_expired_total', node_), 1)
    assert.equal(sample(text, 'ingest_upload_bytes_received_total', node_), 13)
    assert.equal(sample(text, 'ingest_uploads_active', node_), 0)
    assert.equal(sample(text, 'ingest_uploads', {status: 'expired'}), 1)
    assert.equal(sample(text, 'ingest_uploads', {status: 'completed'}), 1)
    assert.equal(sample(text, 'ingest_uploads', {status: 'failed'}), 0)

    assert.equal(sample(text, 'ingest_jobs_total', {kind: 'snapshot', status: 'succeeded'}), 1)
    assert.equal(sample(text, 'ingest_job_duration_seconds_count', {kind: 'snapshot', status: 'succeeded'}), 1)
    assert.equal(sample(text, 'ingest_jobs', {kind: 'snapshot', status: 'succeeded'}), 1)
    // No transcode handler in this node: its job waits in the queue.
    assert.equal(sample(text, 'ingest_jobs', {kind: 'transcode', status: 'queued'}), 1)
    assert.equal(sample(text, 'ingest_queue_depth', {kind: 'transcode'}), 1)
    assert.equal(sample(text, 'ingest_queue_depth', {kind: 'snapshot'}), 0)
    assert.equal(sample(text, 'ingest_metrics_database_up'), 1)
    const lag = sample(text, 'ingest_outbox_lag_seconds')
    assert.ok(lag !== undefined && lag >= 0 && lag < 30, `outbox lag ${lag}`)
    assert.ok(sample(text, 'ingest_outbox_pending') !== undefined)

    assert.equal(sample(text, 'ingest_http_request_duration_seconds_count', {endpoint: 'tus', method: 'POST', status: '201'}), 2)
    assert.equal(sample(text, 'ingest_http_request_duration_seconds_count', {endpoint: 'tus', method: 'PATCH', status: '204'}), 3)
    assert.equal(sample(text, 'ingest_replication_lag_seconds', {peer: 'ops-b'}), 2.5)
    assert.ok(sample(text, 'process_cpu_user_seconds_total', node_) !== undefined, 'default metrics are there')
    assert.ok(sample(text, 'nodejs_eventloop_lag_seconds', node_) !== undefined, 'default metrics are there')
  })

  test('each node counts only its own work (its own registry)', async () => {
    const res = await request('GET', `${b.node.url}/metrics`, {headers: {Authorization: 'Bearer metrics-token-for-the-test'}})
    assert.equal(res.status, 200)
    assert.equal(sample(res.body, 'ingest_uploads_created_total', {node: 'ops-b'}), 0)
    assert.equal(sample(res.body, 'ingest_uploads_created_total', {node: 'ops-a'}), undefined)
  })

  test('with METRICS_TOKEN, a scrape without the token is refused', async () => {
    assert.equal((await request('GET', `${b.node.url}/metrics`)).status, 401)
    assert.equal((await request('GET', `${b.node.url}/metrics`, {headers: {Authorization: 'Bearer wrong'}})).status, 401)
    assert.equal((await request('GET', `${a.node.url}/metrics`)).status, 200, 'without METRICS_TOKEN the endpoint is open')
  })
})
