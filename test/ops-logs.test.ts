/**
 * Logs, captured as the JSON lines a production node writes: every line of a request carries
 * its request id and, once known, its upload id (whichever logger wrote it); job lines carry the
 * upload id, job id and kind; no secret or token reaches any line.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {SignJWT} from 'jose'
import {loadConfig} from '../src/config/index.js'
import {Outcome} from '../src/jobs/outcome.js'
import {JobRegistry} from '../src/jobs/registry.js'
import {createLogger} from '../src/logger.js'
import {startNode, type RunningNode} from '../src/node.js'
import {waitFor} from './support/pipeline-support.js'
import {PATCH_HEADERS, request, TUS} from './support/http.js'
import {freshSchema} from './support/node.js'
import {TEST_DATABASE_URL} from './support/services.js'

type Line = Record<string, unknown>

const JWT_SECRET = 'jwt-secret-that-must-never-be-logged-0123456789'
const DB_PASSWORD = 'db-password-never-logged'
const AMQP_PASSWORD = 'amqp-password-never-logged'
const CLUSTER_SECRET = 'cluster-secret-never-logged-0123456789abcdef'
const ADMIN_TOKEN = 'admin-token-never-logged'
const METRICS_TOKEN = 'metrics-token-never-logged'
const SECRETS = [JWT_SECRET, DB_PASSWORD, AMQP_PASSWORD, CLUSTER_SECRET, ADMIN_TOKEN, METRICS_TOKEN]

describe('logs', {timeout: 60_000}, () => {
  const output: string[] = []
  const lines = (): Line[] => output.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line)
  let node: RunningNode
  let dataDir: string
  let drop: () => Promise<void>
  let token: string

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ingest-ops-logs-'))
    const schema = await freshSchema()
    drop = schema.drop
    // The test database trusts local connections: the password is sent nowhere, but it is in the URL.
    const databaseUrl = TEST_DATABASE_URL.replace('postgres://postgres@', `postgres://postgres:${DB_PASSWORD}@`)
    const config = loadConfig(
      {},
      {
        host: '127.0.0.1', port: 0, dataDir, logLevel: 'debug', expirySweepInterval: 0, retentionInterval: 0, shutdownTimeout: 2000, outboxPollInterval: 50,
        databaseUrl, databaseSchema: schema.schema, authJwtSecret: JWT_SECRET, metricsToken: METRICS_TOKEN,
      }
    )
    const log = createLogger({level: 'debug', pretty: false, destination: {write: (chunk: string) => void output.push(chunk)}})
    const registry = new JobRegistry().register('snapshot', async (job, context) => {
      context.log.info({frames: 3}, 'snapshot handler ran')
      return Outcome.succeeded()
    })
    node = await startNode(config, log, {registry})
    // A config dump, as an operator's start-up line might print it (with the secrets other modules add).
    log.info({config: {...config, amqpUrl: `amqp://ingest:${AMQP_PASSWORD}@rabbitmq:5672`, clusterSecret: CLUSTER_SECRET, adminToken: ADMIN_TOKEN}}, 'config')
    token = await new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject('alice').setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET))
  })

  after(async () => {
    await node?.close()
    await drop?.()
    await rm(dataDir, {recursive: true, force: true})
  })

  test('every line of a request carries its request id and upload id, whoever logged it', async () => {
    const auth = {Authorization: `Bearer ${token}`}
    const created = await request('POST', `${node.url}/files/`, {headers: {...TUS, ...auth, 'Upload-Length': '4', 'X-Request-Id': 'ops-create-1'}})
    assert.equal(created.status, 201)
    const id = String(created.headers.location).split('/').pop()!
    const patched = await request('PATCH', `${node.url}/files/${id}`, {headers: {...PATCH_HEADERS, ...auth, 'Upload-Offset': '0', 'X-Request-Id': 'ops-append-1'}, body: 'abcd'})
    assert.equal(patched.status, 204)

    await waitFor('the request lines', () => lines().filter((l) => l.msg === 'request').length >= 2)
    for (const requestId of ['ops-create-1', 'ops-append-1']) {
      const ofRequest = lines().filter((l) => l.requestId === requestId)
      assert.ok(ofRequest.some((l) => l.msg === 'request'), `${requestId} has its request line`)
      for (const line of ofRequest) assert.equal(line.uploadId, id, `${requestId}: "${String(line.msg)}" carries the upload id`)
    }
    // Logged by the completion code with the node's logger, not the request's: the id is still there.
    const completed = lines().find((l) => l.msg === 'upload completed')
    assert.equal(completed?.requestId, 'ops-append-1')
    assert.equal(completed?.uploadId, id)
  })

  test('job lines carry the upload id, the job id and the kind', async () => {
    const ran = await waitFor('the snapshot handler line', () => lines().find((l) => l.msg === 'snapshot handler ran'))
    const succeeded = await waitFor('the job succeeded line', () => lines().find((l) => l.msg === 'job succeeded'))
    for (const line of [ran, succeeded]) {
      assert.equal(line.kind, 'snapshot')
      assert.equal(typeof line.uploadId, 'string')
      assert.equal(typeof line.jobId, 'number')
    }
    assert.equal(ran.jobId, succeeded.jobId)
  })

  test('no secret or token reaches the logs', async () => {
    assert.equal((await request('GET', `${node.url}/api/uploads`, {headers: {Authorization: 'Bearer not.a-valid.token-ops'}})).status, 401)
    assert.equal((await request('GET', `${node.url}/metrics`, {headers: {Authorization: `Bearer ${METRICS_TOKEN}`}})).status, 200)
    const log = createLogger({level: 'info', pretty: false, destination: {write: (chunk: string) => void output.push(chunk)}})
    log.error({err: new Error(`could not connect to amqp://ingest:${AMQP_PASSWORD}@rabbitmq:5672`)}, 'broker down')
    log.warn(`retrying postgres://postgres:${DB_PASSWORD}@db/ingest`)
    log.info({headers: {authorization: `Bearer ${token}`}, note: `sent Bearer ${token}`}, 'a request as seen by a proxy')

    const text = output.join('')
    for (const secret of [...SECRETS, token, 'not.a-valid.token-ops']) assert.ok(!text.includes(secret), `a secret leaked: ${secret.slice(0, 12)}…`)
    const dump = lines().find((l) => l.msg === 'config')!.config as Record<string, unknown>
    for (const key of ['databaseUrl', 'amqpUrl', 'authJwtSecret', 'clusterSecret', 'adminToken', 'metricsToken']) assert.equal(dump[key], '[redacted]', key)
    assert.equal(dump.databaseSchema !== undefined && dump.port === 0, true, 'the rest of the config stays readable')
    assert.ok(text.includes('amqp://ingest:[redacted]@rabbitmq'), 'credentials in URLs are scrubbed, the rest kept')
  })
})
