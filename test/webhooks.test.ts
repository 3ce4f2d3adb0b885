/**
 * Webhooks against a real HTTP receiver on 127.0.0.1 (hence WEBHOOK_ALLOW_PRIVATE=true), which
 * checks every request with the Standard Webhooks algorithm written out here, apart from our
 * signer: the secret's base64 after `whsec_`, HMAC-SHA256 over "id.timestamp.body", compared
 * with each `v1,` signature in constant time, the timestamp within five minutes.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {createHmac, randomBytes, timingSafeEqual} from 'node:crypto'
import {once} from 'node:events'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {after, before, describe, test} from 'node:test'
import {ADMIN_TOKEN, cliFor} from './support/admin-support.js'
import {tools} from './support/media-fixtures.js'
import {waitFor} from './support/pipeline-support.js'
import {createUpload, PATCH_HEADERS, request} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

const exec = promisify(execFile)
const SECRET = `whsec_${randomBytes(32).toString('base64')}`

interface Received {
  id: string
  timestamp: number
  body: {type: string; timestamp: string; data: Record<string, unknown>}
  answered: number
}

/** The receiver: verifies each request as the specification says and answers with `answer()`'s status. */
async function startReceiver(answer: (webhookId: string) => number) {
  const received: Received[] = []
  const refused: string[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8')
      const id = String(req.headers['webhook-id'] ?? '')
      const timestamp = String(req.headers['webhook-timestamp'] ?? '')
      const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64')
      const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${raw}`).digest()
      const signatures = String(req.headers['webhook-signature'] ?? '').split(' ')
      const valid = signatures.some((s) => {
        const [version, value] = s.split(',')
        const given = Buffer.from(value ?? '', 'base64')
        return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected)
      })
      const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300
      if (req.method !== 'POST' || req.headers['content-type'] !== 'application/json' || !id || !valid || !fresh) {
        refused.push(`${req.method} ${id} valid=${valid} fresh=${fresh}`)
        res.writeHead(400).end()
        return
      }
      const status = answer(id)
      received.push({id, timestamp: Number(timestamp), body: JSON.parse(raw) as Received['body'], answered: status})
      res.writeHead(status).end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks?via=test`, received, refused, close: () => new Promise<void>((r) => server.close(() => r()))}
}

async function startWebhookNode(url: string, overrides: Record<string, unknown> = {}): Promise<TestNode> {
  // The default consumers: media jobs run for real, and their outcomes are the events delivered.
  return startTestNode(
    'postgres',
    {
      webhookUrl: url,
      webhookSecret: SECRET,
      webhookAllowPrivate: true,
      adminToken: ADMIN_TOKEN,
      outboxPollInterval: 50,
      jobRetryDelay: 100,
      x264Preset: 'ultrafast',
      renditions: [{name: '240p', height: 240, videoBitrate: '300k', audioBitrate: '64k'}],
      thumbnailCount: 1,
      ...overrides,
    },
    {}
  )
}

async function upload(node: TestNode, bytes: Buffer): Promise<string> {
  const location = await createUpload(node.url, bytes.length, {'Upload-Metadata': `filename ${Buffer.from('clip.mp4').toString('base64')}`})
  const patched = await request('PATCH', location, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: bytes})
  assert.equal(patched.status, 204, patched.body)
  return location.split('/').pop()!
}

describe('webhooks', {timeout: 180_000}, () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ingest-webhooks-'))
  })
  after(async () => {
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  test('each event is POSTed signed; answered 500 twice, the delivery is retried with the same webhook-id until a 200; upload.ready carries the artifact URLs', async () => {
    const attempts = new Map<string, number>()
    const receiver = await startReceiver((id) => {
      const n = (attempts.get(id) ?? 0) + 1
      attempts.set(id, n)
      return n <= 2 ? 500 : 200
    })
    const node = await startWebhookNode(receiver.url)
    try {
      const clip = path.join(dir, 'clip.mp4')
      await exec(tools.ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=1', '-c:v', 'libx264', '-preset', 'ultrafast', clip])
      const uploadId = await upload(node, await readFile(clip))
      const ready = await waitFor('upload.ready to be delivered', () => receiver.received.find((r) => r.body.type === 'upload.ready' && r.answered === 200), 90_000).catch(async (error: Error) => {
        const jobs = (await node.pipeline.jobs.forUpload(uploadId)).map((j) => ({kind: j.kind, status: j.status, attempts: j.attempts, rerunOwed: j.rerunOwed, lastError: j.lastError}))
        const owed = await node.db.query(`SELECT event_id, topic, attempts, delivered_at, last_error FROM webhook_deliveries`)
        throw new Error(`${error.message}; received ${JSON.stringify(receiver.received.map((r) => [r.id, r.body.type, r.answered]))}; jobs ${JSON.stringify(jobs)}; deliveries ${JSON.stringify(owed)}`)
      })
      assert.deepEqual(receiver.refused, [], 'every request carried a valid signature')

      const completed = receiver.received.filter((r) => r.body.type === 'upload.completed')
      assert.deepEqual(completed.map((r) => r.answered), [500, 500, 200], 'upload.completed: two 500s, then delivered')
      assert.equal(new Set(completed.map((r) => r.id)).size, 1, 'the same webhook-id on every attempt')
      assert.match(completed[0]!.id, /^msg_\d+$/)
      assert.notEqual(ready.id, completed[0]!.id, 'each event has its own webhook-id')
      assert.equal(completed[0]!.body.data.id, uploadId)
      assert.equal(completed[0]!.body.data.status, 'completed')
      assert.ok(!Number.isNaN(Date.parse(completed[0]!.body.timestamp)))
      assert.ok(completed.indexOf(completed.at(-1)!) < receiver.received.indexOf(ready), 'delivered in order')

      assert.equal(ready.body.data.status, 'ready')
      const artifacts = ready.body.data.artifacts as Array<{kind: string; url: string}>
      const mp4 = artifacts.find((a) => a.kind === 'mp4')
      assert.ok(mp4, `upload.ready lists the MP4: ${JSON.stringify(artifacts)}`)
      const served = await fetch(mp4.url)
      assert.equal(served.status, 200, `${mp4.url} is served`)

      const job = await waitFor('the webhook job to succeed', async () => {
        const body = (await (await fetch(`${node.url}/api/uploads/${uploadId}`)).json()) as {jobs: Array<{kind: string; status: string; attempts: number}>}
        return body.jobs.find((j) => j.kind === 'webhook' && j.status === 'succeeded')
      })
      assert.ok(job.attempts >= 3)
    } finally {
      await node.stop()
      await receiver.close()
    }
  })

  test('a delivery that never succeeds is dead, shows in `ingest jobs ls --kind webhook` and `ingest dlq ls`, and arrives once requeued from the CLI', async () => {
    let up = false
    const receiver = await startReceiver(() => (up ? 200 : 503))
    const node = await startWebhookNode(receiver.url, {jobMaxAttempts: 2})
    const cli = cliFor(node)
    try {
      // Not a video: the media jobs die at once, the upload fails; each is an event to deliver.
      const uploadId = await upload(node, Buffer.from('hello, not a video'))
      // The webhook job reruns on each new event (rerun policy): wait until the last event is in and it died after it.
      await waitFor(
        'the media jobs and then the webhook job to die, with no event left to relay',
        async () => {
          const jobs = await node.pipeline.jobs.forUpload(uploadId)
          const status = Object.fromEntries(jobs.map((j) => [j.kind, j.status]))
          const [{pending}] = (await node.db.query(`SELECT count(*)::int AS pending FROM outbox WHERE published_at IS NULL`)) as [{pending: number}]
          const webhook = jobs.find((j) => j.kind === 'webhook')
          const settled = webhook?.finishedAt && Date.now() - webhook.finishedAt.getTime() > 1000
          return status.transcode === 'dead' && status.snapshot === 'dead' && webhook?.status === 'dead' && settled && pending === 0
        },
        30_000
      )
      const failedIds = new Set(receiver.received.map((r) => r.id))
      assert.ok(failedIds.size >= 1)

      const listed = await cli('jobs', 'ls', '--kind', 'webhook', '--status', 'dead')
      assert.equal(listed.code, 0, listed.stderr)
      assert.match(listed.stdout, new RegExp(uploadId))
      const letters = await cli('dlq', 'ls', '--kind', 'webhook')
      assert.equal(letters.code, 0, letters.stderr)
      assert.match(letters.stdout, new RegExp(uploadId))
      assert.match(letters.stdout, /upload\.completed \(msg_\d+\): the webhook/, "the reason names the event that failed")

      up = true
      const requeued = await cli('requeue', uploadId, '--kind', 'webhook')
      assert.equal(requeued.code, 0, requeued.stderr + requeued.stdout)
      const delivered = await waitFor('the requeued deliveries to arrive', () => {
        const ok = receiver.received.filter((r) => r.answered === 200)
        return ok.some((r) => r.body.type === 'upload.failed') && ok.some((r) => r.body.type === 'job.dead') ? ok : undefined
      }, 20_000)
      for (const id of failedIds) assert.ok(delivered.some((r) => r.id === id), `${id}, which had failed, arrived with the same id`)
      const failed = delivered.find((r) => r.body.type === 'upload.failed')!
      assert.equal(failed.body.data.status, 'failed')
      assert.equal(typeof failed.body.data.reason, 'string')
      const dead = delivered.find((r) => r.body.type === 'job.dead')!
      assert.ok(['transcode', 'snapshot'].includes((dead.body.data.job as {kind: string}).kind), 'job.dead names the media job')
      assert.ok(!receiver.received.some((r) => r.body.type === 'job.dead' && (r.body.data.job as {kind: string}).kind === 'webhook'), 'the webhook job\'s own death is not a webhook')
      assert.deepEqual(receiver.refused, [])
    } finally {
      await node.stop()
      await receiver.close()
    }
  })

  test('a WEBHOOK_URL that resolves to this machine or to a link-local address is refused at start unless WEBHOOK_ALLOW_PRIVATE=true', async () => {
    for (const url of ['http://127.0.0.1:9/hooks', 'http://localhost:9/hooks', 'http://169.254.169.254/latest', 'http://[::1]:9/']) {
      await assert.rejects(startWebhookNode(url, {webhookAllowPrivate: false}), (error: Error) => {
        assert.match(error.message, /^invalid WEBHOOK_URL: it resolves to (this machine|a link-local address)/)
        assert.ok(!error.message.includes('/hooks') && !error.message.includes('/latest'), 'the message does not print the URL')
        return true
      })
    }
  })
})
