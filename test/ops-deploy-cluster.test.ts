/**
 * The cluster recipe of the README and docker-compose.yml, run as processes: two upload nodes
 * and a media worker beside each (same NODE_ID and data directory), started with the commands
 * the compose file gives them, against the test's PostgreSQL and RabbitMQ. One upload: every job
 * it starts settles, and its artifacts reach the other node through the fan-out job (the
 * catch-up loop is set far out, so it cannot be what copied them).
 */
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {after, before, describe, test} from 'node:test'
import pg from 'pg'
import {retryDelays} from '../src/jobs/job-policies.js'
import {topology} from '../src/jobs/topology.js'
import {writeSmallClip} from './support/media-fixtures.js'
import {removeTopology, testPrefix, waitFor} from './support/pipeline-support.js'
import {spawnCli, waitHealthy, type CliProcess} from './support/cli-process.js'
import {createUpload, PATCH_HEADERS, request} from './support/http.js'
import {freshSchema} from './support/node.js'
import {startProcessCluster} from './support/process-cluster.js'
import {requireService, TEST_AMQP_URL, TEST_DATABASE_URL} from './support/services.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The `command:` the compose file gives a service. */
async function composeCommand(service: string): Promise<string[]> {
  const compose = await readFile(path.join(root, 'docker-compose.yml'), 'utf8')
  const block = new RegExp(`^  ${service}:\\n((?:    .*\\n)+)`, 'm').exec(compose)?.[1]
  const command = block && /^    command: (\[.*\])$/m.exec(block)?.[1]
  assert.ok(command, `docker-compose.yml gives ${service} a command`)
  return JSON.parse(command) as string[]
}

describe('the documented cluster: nodes run `ingest serve`, workers `ingest worker --kinds transcode,snapshot`', {timeout: 150_000}, () => {
  const prefix = testPrefix()
  const t = topology(prefix, retryDelays(200, 3), 10)
  const secret = randomBytes(32).toString('hex')
  const processes: CliProcess[] = []
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let dir: string
  let db: pg.Client
  const nodes: Array<{id: string; url: string; dataDir: string}> = []

  before(async () => {
    await requireService('RabbitMQ', TEST_AMQP_URL)
    schema = await freshSchema()
    dir = await mkdtemp(path.join(os.tmpdir(), 'ingest-deploy-'))
    const shared = {
      DATABASE_URL: TEST_DATABASE_URL,
      DATABASE_SCHEMA: schema.schema,
      AMQP_URL: TEST_AMQP_URL,
      QUEUE_PREFIX: prefix,
      CLUSTER_SECRET: secret,
      JOB_RETRY_DELAY: '200ms',
      JOB_MAX_ATTEMPTS: '3',
      OUTBOX_POLL_INTERVAL: '50ms',
      NODE_HEARTBEAT_INTERVAL: '500ms',
      REPLICATION_RECONCILE_INTERVAL: '1h',
      MEDIA_X264_PRESET: 'ultrafast',
      MEDIA_RENDITIONS: JSON.stringify([{name: '240p', height: 240, videoBitrate: '300k', audioBitrate: '64k'}]),
      MEDIA_THUMBNAIL_COUNT: '2',
      SHUTDOWN_TIMEOUT: '5s',
      LOG_LEVEL: 'warn',
    }
    const [serve, work] = await Promise.all([composeCommand('node1'), composeCommand('worker1')])
    const cluster = await startProcessCluster<CliProcess>({
      nodes: 2,
      dir,
      env: shared,
      id: (i) => `deploy-node${i + 1}-${prefix}`,
      start: async (env, port) => {
        const proc = spawnCli(serve, {...env, HOST: '127.0.0.1', PORT: String(port)})
        processes.push(proc)
        await waitHealthy(proc, env.NODE_URL!)
        // Its worker beside it, as in the compose file: the same id and data directory. Started
        // with its node, so node1's worker is there first and takes the upload's media jobs.
        processes.push(spawnCli(work, {...shared, NODE_ID: env.NODE_ID!, DATA_DIR: env.DATA_DIR!}))
        return proc
      },
    })
    for (const [i, id] of cluster.ids.entries()) nodes.push({id, url: cluster.urls[i]!, dataDir: cluster.dataDirs[i]!})
    db = new pg.Client({connectionString: TEST_DATABASE_URL})
    await db.connect()
    await db.query(`SET search_path TO ${schema.schema}`)
    await waitFor('both nodes in the live set', async () => (await db.query('SELECT count(*)::int AS n FROM nodes')).rows[0].n === 2)
  })

  after(async () => {
    const codes = await Promise.all(processes.map((p) => p.stop('SIGTERM')))
    for (const p of processes) p.child.kill('SIGKILL')
    await db?.end()
    await removeTopology(t)
    await schema?.drop()
    if (dir) await rm(dir, {recursive: true, force: true})
    assert.deepEqual(codes.map((c) => c.code), processes.map(() => 0), 'every process stops on SIGTERM with exit 0')
  })

  test('an upload to one node: transcode, snapshot and fanout all succeed, and the other node holds every artifact', async () => {
    const [node1, node2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]]
    const clip = path.join(dir, 'clip.mp4')
    await writeSmallClip(clip)
    const bytes = await readFile(clip)
    const location = await createUpload(node1.url, bytes.length, {'Upload-Metadata': `filename ${Buffer.from('clip.mp4').toString('base64')}`})
    const uploadId = location.split('/').pop()!
    const patched = await request('PATCH', location, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: bytes})
    assert.equal(patched.status, 204, patched.body)

    type Job = {kind: string; status: string; lastError: string | null}
    await waitFor(
      'every job of the upload to settle',
      async () => {
        for (const p of processes) if (p.child.exitCode !== null) throw new Error(`a process exited:\n${p.output()}`)
        const res = await fetch(`${node2.url}/api/uploads/${uploadId}`)
        const body = (await res.json()) as {status: string; jobs: Job[]}
        const dead = body.jobs.find((j) => j.status === 'dead')
        if (dead) throw new Error(`the ${dead.kind} job died: ${dead.lastError}`)
        const kinds = body.jobs.map((j) => j.kind).sort()
        const settled = body.status === 'ready' && kinds.join() === 'fanout,snapshot,transcode' && body.jobs.every((j) => j.status === 'succeeded')
        return settled
      },
      90_000
    )

    // Fan-out reruns as artifacts keep coming: wait for it to have copied the last one, then look at the disk.
    const artifacts = await waitFor(
      'the second node to hold every artifact',
      async () => {
        const {rows} = await db.query<{path: string; sha256: string; size: string; node_id: string; copies: string[]}>(
          `SELECT a.path, a.sha256, a.size, a.node_id, array_remove(array_agg(r.node_id), NULL) AS copies
             FROM artifacts a LEFT JOIN replicas r ON r.artifact_id = a.id
            WHERE a.upload_id = $1 GROUP BY a.id`,
          [uploadId]
        )
        const statuses = (await db.query<{status: string}>(`SELECT status FROM jobs WHERE upload_id = $1`, [uploadId])).rows
        return rows.length > 0 && rows.every((r) => r.copies.includes(node2.id)) && statuses.every((s) => s.status === 'succeeded') ? rows : undefined
      },
      30_000
    )
    assert.ok(artifacts.some((a) => a.path === 'video.mp4'), 'the MP4 is an artifact')
    assert.ok(artifacts.some((a) => a.path === 'poster.jpg'), 'the poster is an artifact')
    for (const artifact of artifacts) {
      assert.equal(artifact.node_id, node1.id, `${artifact.path} was made beside the node that took the upload`)
      const copy = await readFile(path.join(node2.dataDir, 'media', uploadId, ...artifact.path.split('/')))
      assert.equal(copy.length, Number(artifact.size), `${artifact.path}: size of the copy`)
      assert.equal(createHash('sha256').update(copy).digest('hex'), artifact.sha256, `${artifact.path}: the copy on the second node is whole`)
    }
  })
})
