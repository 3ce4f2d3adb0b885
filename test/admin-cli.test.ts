/**
 * The admin CLI end to end: `ingest` as a child process against a node with real PostgreSQL and
 * RabbitMQ. The transcode handler here stands in for ffmpeg: it fails for good (bad input) for
 * the uploads in `broken`, hangs for those in `hanging`, and succeeds otherwise, so a test can
 * make a job fail, fix the cause, and requeue it.
 */
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {JobRepository} from '../src/jobs/job-repository.js'
import {Outcome, UnrecoverableError} from '../src/jobs/outcome.js'
import {JobRegistry} from '../src/jobs/registry.js'
import {topology} from '../src/jobs/topology.js'
import {retryDelays} from '../src/jobs/job-policies.js'
import {UploadRepository} from '../src/uploads/upload-repository.js'
import {UploadStatus} from '../src/uploads/upload-status.js'
import {ADMIN_TOKEN, cliFor, ingest, startAdminNode, type AdminTestNode} from './support/admin-support.js'
import {completedUpload, inspector, randomId, waitFor} from './support/pipeline-support.js'
import {b64, createUpload, PATCH_HEADERS, request} from './support/http.js'
import {freePort} from './support/process-node.js'

const BAD_INPUT = 'invalid data found when processing input (not a video)'

describe('ingest admin commands against a node with PostgreSQL and RabbitMQ', {timeout: 240_000}, () => {
  let node: AdminTestNode
  let jobs: JobRepository
  let cli: ReturnType<typeof cliFor>
  const broken = new Set<string>()
  const hanging = new Map<string, () => void>()

  before(async () => {
    const registry = new JobRegistry()
      .register('transcode', async (job) => {
        if (broken.has(job.uploadId)) throw new UnrecoverableError(BAD_INPUT)
        if (hanging.has(job.uploadId)) await new Promise<void>((resolve) => hanging.set(job.uploadId, resolve))
        return Outcome.succeeded()
      })
      .register('snapshot', async () => Outcome.succeeded())
    node = await startAdminNode(registry, {broker: 'amqp'})
    jobs = new JobRepository(node.db)
    cli = cliFor(node)
  })

  after(async () => {
    for (const release of hanging.values()) release()
    await node?.stop()
  })

  const transcodeOf = (uploadId: string, status: string) =>
    waitFor(`the transcode job of ${uploadId} to be ${status}`, async () => {
      const job = await jobs.find(uploadId, 'transcode')
      return job?.status === status ? job : undefined
    }, 30_000)

  async function tusUpload(body: string, filename: string): Promise<string> {
    const url = await createUpload(node.url, Buffer.byteLength(body), {'Upload-Metadata': `filename ${b64(filename)}`})
    const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body})
    assert.equal(res.status, 204)
    return url.split('/').pop()!
  }

  test('a wrong or missing token, an unreachable node and bad arguments each give their exit code and a clear message', async () => {
    const wrong = await ingest(['jobs', 'ls'], {INGEST_URL: node.url, INGEST_ADMIN_TOKEN: 'not-the-token-at-all'})
    assert.equal(wrong.code, 4)
    assert.match(wrong.stderr, /refused the request: the admin token is not valid for this node \(check --token or INGEST_ADMIN_TOKEN\)/)
    assert.ok(!wrong.stderr.includes(ADMIN_TOKEN) && !wrong.stderr.includes('not-the-token-at-all'))

    const missing = await ingest(['jobs', 'ls', '--url', node.url])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /no admin token: pass --token or set INGEST_ADMIN_TOKEN\nusage: ingest jobs ls \[options\]/)

    const closed = await freePort()
    const down = await ingest(['nodes', 'ls', '--url', `http://127.0.0.1:${closed}`, '--token', ADMIN_TOKEN])
    assert.equal(down.code, 3)
    assert.match(down.stderr, new RegExp(`cannot reach the node at http://127\\.0\\.0\\.1:${closed}: connection refused`))

    for (const args of [
      ['jobs', 'ls', '--status', 'exploded'],
      ['jobs', 'ls', '--since', 'yesterday-ish'],
      ['requeue'],
      ['requeue', '--failed', '--dead'],
      ['requeue', '12', '--dead'],
      ['dlq', 'ls'],
      ['dlq', 'purge', '--kind', 'transcode'],
      ['uploads', 'ls', '--limit', '0'],
      ['jobs', 'show', 'abc'],
      ['frobnicate'],
    ]) {
      const result = await cli(...args)
      assert.equal(result.code, 2, `ingest ${args.join(' ')} exits 2; stderr: ${result.stderr}`)
      assert.match(result.stderr, /error: .+\n(usage: ingest|Usage: )/, `ingest ${args.join(' ')} names the error and shows the usage`)
    }
  })

  test('--help on every command shows its examples and exits 0', async () => {
    for (const args of [['uploads', 'ls'], ['uploads', 'show'], ['jobs', 'ls'], ['jobs', 'show'], ['requeue'], ['dlq', 'ls'], ['dlq', 'replay'], ['dlq', 'purge'], ['nodes', 'ls']]) {
      const result = await ingest([...args, '--help'])
      assert.equal(result.code, 0)
      assert.match(result.stdout, new RegExp(`Usage: ingest ${args.join(' ')}`))
      assert.match(result.stdout, /Examples:\n  \$ ingest /)
      assert.match(result.stdout, /INGEST_URL/)
    }
  })

  test('uploads ls filters by status and owner; uploads show has the jobs and their attempts', async () => {
    const id = await tusUpload('hello, not a video', 'clip.mp4')
    await transcodeOf(id, 'succeeded')
    const owned = randomId()
    await new UploadRepository(node.db).insert({
      id: owned, owner: 'alice', filename: 'alice.mov', filetype: 'video/quicktime', metadata: {}, size: 10, bytesReceived: 3, status: UploadStatus.Uploading,
      nodeId: node.config.nodeId, sha256: null, md5: null, failureReason: null, expiresAt: null, completedAt: null,
    })

    const all = await cli('uploads', 'ls', '--json')
    assert.equal(all.code, 0, all.stderr)
    const ids = (JSON.parse(all.stdout) as {uploads: Array<{id: string}>}).uploads.map((u) => u.id)
    assert.deepEqual(ids, [owned, id])

    const alice = JSON.parse((await cli('uploads', 'ls', '--owner', 'alice', '--json')).stdout) as {uploads: Array<{id: string; owner: string; status: string}>}
    assert.deepEqual(alice.uploads.map((u) => [u.id, u.owner, u.status]), [[owned, 'alice', 'uploading']])
    const uploading = await cli('uploads', 'ls', '--status', 'uploading', '--since', '1h')
    assert.equal(uploading.code, 0)
    assert.match(uploading.stdout, /^ID +STATUS +OWNER +FILENAME +SIZE +NODE +CREATED\n/)
    assert.match(uploading.stdout, new RegExp(`${owned} +uploading +alice +alice\\.mov +10 B`))
    assert.ok(!uploading.stdout.includes(id))

    const show = await cli('uploads', 'show', id)
    assert.equal(show.code, 0, show.stderr)
    assert.match(show.stdout, /filename: +clip\.mp4/)
    assert.match(show.stdout, /job \d+ +transcode +succeeded +attempts 1/)
    assert.match(show.stdout, /ATTEMPT +WORKER +OUTCOME/)

    const unknown = await cli('uploads', 'show', 'no-such-upload')
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /upload no-such-upload not found/)
  })

  test('a failed transcode is listed, shown with its error, requeued after the cause is fixed, and succeeds with its history kept', async () => {
    const id = randomId()
    broken.add(id)
    await completedUpload(node.db, id)
    const dead = await transcodeOf(id, 'dead')

    const listed = await cli('jobs', 'ls', '--status', 'dead', '--kind', 'transcode')
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, /^ID +UPLOAD +KIND +STATUS +ATTEMPTS +UPDATED +LAST ERROR\n/)
    assert.match(listed.stdout, new RegExp(`${dead.id} +${id} +transcode +dead +1 .+${BAD_INPUT.slice(0, 30)}`))

    const shown = JSON.parse((await cli('jobs', 'show', String(dead.id), '--json')).stdout) as {status: string; lastError: string; history: Array<{outcome: string; error: string}>}
    assert.equal(shown.status, 'dead')
    assert.equal(shown.lastError, BAD_INPUT)
    assert.deepEqual(shown.history.map((a) => [a.outcome, a.error]), [['dead', BAD_INPUT]])

    // A dry run says what it would do and changes nothing.
    const dry = await cli('requeue', String(dead.id), '--dry-run')
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, new RegExp(`would requeue +job ${dead.id} \\(transcode of upload ${id}, was dead\\)`))
    assert.match(dry.stdout, /dry run: nothing changed/)
    const after = await jobs.find(id, 'transcode')
    assert.deepEqual(after, dead)

    broken.delete(id)
    const requeued = await cli('requeue', id, '--kind', 'transcode')
    assert.equal(requeued.code, 0, requeued.stderr)
    assert.match(requeued.stdout, new RegExp(`requeued +job ${dead.id} \\(transcode of upload ${id}, was dead\\)`))
    const done = await transcodeOf(id, 'succeeded')
    assert.equal(done.attempts, 2)
    const [history] = (await jobs.forUpload(id)).filter((j) => j.kind === 'transcode')
    assert.deepEqual(history!.history.map((a) => [a.attempt, a.outcome]), [[1, 'dead'], [2, 'succeeded']])

    // Nothing left to requeue for this upload: exit 0, and it says so.
    const again = await cli('requeue', id)
    assert.equal(again.code, 0)
    assert.match(again.stdout, /none of its jobs failed/)
  })

  test('requeueing twice in a row queues one run', async () => {
    // No process here consumes fanout jobs: the message waits in the queue, where we count it.
    const uploadId = await completedUpload(node.db)
    const [{id}] = (await node.db.query(`INSERT INTO jobs (upload_id, kind, status, attempts, last_error) VALUES ($1, 'fanout', 'dead', 1, 'peer down') RETURNING id`, [uploadId])) as [{id: string}]
    const first = await cli('requeue', String(id), '--json')
    const second = await cli('requeue', String(id), '--json')
    assert.equal(first.code, 0, first.stderr)
    assert.equal(second.code, 0, second.stderr)
    assert.equal((JSON.parse(first.stdout) as {items: Array<{result: string}>}).items[0]!.result, 'requeued')
    assert.deepEqual((JSON.parse(second.stdout) as {items: Array<{result: string; reason: string}>}).items.map((i) => [i.result, i.reason]), [['skipped', 'already queued']])
    const look = await inspector()
    try {
      const t = topology(node.config.queuePrefix, retryDelays(100, 2), node.config.jobDeliveryLimit)
      await waitFor('the fanout message', async () => (await look.channel.checkQueue(t.workQueue('fanout'))).messageCount >= 1)
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.equal((await look.channel.checkQueue(t.workQueue('fanout'))).messageCount, 1)
    } finally {
      await look.close()
    }
  })

  test('a running job is refused without --force; with it, the stuck attempt is abandoned and the job runs again', async () => {
    const id = randomId()
    hanging.set(id, () => {})
    await completedUpload(node.db, id)
    const running = await transcodeOf(id, 'running')
    const refused = await cli('requeue', String(running.id))
    assert.equal(refused.code, 1)
    assert.match(refused.stdout, new RegExp(`refused +job ${running.id} .*the job is running; use --force to requeue it anyway`))

    const forced = await cli('requeue', String(running.id), '--force')
    assert.equal(forced.code, 0, forced.stderr)
    const release = hanging.get(id)!
    hanging.delete(id)
    release()
    const done = await transcodeOf(id, 'succeeded')
    const [history] = (await jobs.forUpload(id)).filter((j) => j.kind === 'transcode')
    assert.deepEqual(history!.history.map((a) => a.outcome), ['abandoned', 'succeeded'])
    assert.equal(done.attempts, 2)
  })

  test('bulk: 50 dead transcodes, a dry run that changes nothing, then all requeued and succeeded', async () => {
    await cli('dlq', 'purge', '--kind', 'transcode', '--yes')
    const ids = Array.from({length: 50}, () => randomId())
    for (const id of ids) broken.add(id)
    for (const id of ids) await completedUpload(node.db, id)
    await waitFor('50 dead transcodes', async () => (await jobs.list({status: 'dead', kind: 'transcode', limit: 100})).length === 50, 60_000)

    const dry = await cli('requeue', '--dead', '--kind', 'transcode', '--since', '10m', '--dry-run', '--json')
    assert.equal(dry.code, 0, dry.stderr)
    const planned = JSON.parse(dry.stdout) as {dryRun: boolean; items: Array<{result: string; uploadId: string}>; summary: Record<string, number>}
    assert.equal(planned.dryRun, true)
    assert.deepEqual(planned.summary, {'would-requeue': 50})
    assert.deepEqual(new Set(planned.items.map((i) => i.uploadId)), new Set(ids))
    assert.equal((await jobs.list({status: 'dead', kind: 'transcode', limit: 100})).length, 50)

    for (const id of ids) broken.delete(id)
    const bulk = await cli('requeue', '--dead', '--kind', 'transcode')
    assert.equal(bulk.code, 0, bulk.stderr)
    assert.match(bulk.stdout, /50 requeued\n$/)
    await waitFor('50 transcodes to succeed', async () => {
      const rows = await Promise.all(ids.map((id) => jobs.find(id, 'transcode')))
      return rows.every((j) => j?.status === 'succeeded')
    }, 90_000)
    const histories = await Promise.all(ids.map(async (id) => (await jobs.forUpload(id)).find((j) => j.kind === 'transcode')!.history.map((a) => a.outcome)))
    assert.ok(histories.every((h) => h.join() === 'dead,succeeded'))
  })

  test('dlq: a dead-lettered message is listed, replayed after the fix, and its job succeeds; purge needs --yes', async () => {
    const purged = await cli('dlq', 'purge', '--kind', 'transcode', '--yes', '--json')
    assert.equal(purged.code, 0, purged.stderr)
    assert.equal(typeof (JSON.parse(purged.stdout) as {purged: number}).purged, 'number')

    const id = randomId()
    broken.add(id)
    await completedUpload(node.db, id)
    const dead = await transcodeOf(id, 'dead')
    const listed = await waitFor('the dead letter', async () => {
      const out = JSON.parse((await cli('dlq', 'ls', '--kind', 'transcode', '--json')).stdout) as {total: number; letters: Array<{uploadId: string; jobId: number; jobStatus: string; reason: string; node: string}>}
      return out.total === 1 ? out : undefined
    })
    assert.deepEqual(listed.letters.map((l) => [l.uploadId, l.jobId, l.jobStatus, l.reason, l.node]), [[id, dead.id, 'dead', BAD_INPUT, node.config.nodeId]])
    const table = await cli('dlq', 'ls', '--kind', 'transcode')
    assert.match(table.stdout, /^1 dead letter in transcode\nUPLOAD +JOB +JOB NOW +DEAD +NODE +REASON\n/)

    broken.delete(id)
    const replay = await cli('dlq', 'replay', '--kind', 'transcode')
    assert.equal(replay.code, 0, replay.stderr)
    assert.match(replay.stdout, new RegExp(`replayed upload ${id} \\(job ${dead.id}\\)\n1 replayed\n`))
    await transcodeOf(id, 'succeeded')
    assert.equal((JSON.parse((await cli('dlq', 'ls', '--kind', 'transcode', '--json')).stdout) as {total: number}).total, 0)

    const empty = await cli('dlq', 'replay', '--kind', 'transcode')
    assert.equal(empty.code, 0)
    assert.match(empty.stdout, /no dead letters in transcode/)
  })

  test('nodes ls shows the node that answers', async () => {
    const listed = await cli('nodes', 'ls', '--json')
    assert.equal(listed.code, 0, listed.stderr)
    const self = (JSON.parse(listed.stdout) as {nodes: Array<{id: string; self: boolean; broker: string; consumes: string[]}>}).nodes.find((n) => n.self)!
    assert.equal(self.id, node.config.nodeId)
    assert.equal(self.broker, 'amqp')
    assert.deepEqual(self.consumes.sort(), ['snapshot', 'transcode'])
    const table = await cli('nodes', 'ls')
    assert.match(table.stdout, /^ID +URL +BROKER +CONSUMES +STARTED +LAST SEEN\n/)
    assert.match(table.stdout, new RegExp(`${node.config.nodeId} \\*`))
  })
})
