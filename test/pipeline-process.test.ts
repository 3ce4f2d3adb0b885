/**
 * Worker processes against the real RabbitMQ and PostgreSQL: one killed with SIGKILL mid-job
 * (the job is redelivered and completes once), and SIGTERM (in-flight work finishes or is
 * handed back, nothing new is taken, exit 0).
 */
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {JobRepository} from '../src/jobs/job-repository.js'
import {retryDelays} from '../src/jobs/job-policies.js'
import {topology} from '../src/jobs/topology.js'
import {TEST_AMQP_URL, TEST_DATABASE_URL} from './support/services.js'
import {completedUpload, inspector, openTestDatabase, removeTopology, testPrefix, waitFor, type TestDatabase} from './support/pipeline-support.js'

interface Worker {
  child: ChildProcess
  output: string[]
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
}

describe('worker processes', {timeout: 90_000}, () => {
  let database: TestDatabase
  let dir: string
  const prefix = testPrefix()
  // The delays and limit must match what the workers declare (JOB_RETRY_DELAY, JOB_MAX_ATTEMPTS).
  const t = topology(prefix, retryDelays(200, 3), 10)

  before(async () => {
    database = await openTestDatabase()
    dir = await mkdtemp(path.join(os.tmpdir(), 'ingest-worker-'))
  })

  after(async () => {
    await removeTopology(t)
    await database?.drop()
    await rm(dir, {recursive: true, force: true})
  })

  let logName = 'completed.log'
  const logPath = () => path.join(dir, logName)

  function spawnWorker(mode: string, extra: Record<string, string> = {}): Worker {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/pipeline-worker.ts'], {
      env: {
        ...process.env,
        AMQP_URL: TEST_AMQP_URL,
        DATABASE_URL: TEST_DATABASE_URL,
        DATABASE_SCHEMA: database.schema,
        DATA_DIR: dir,
        QUEUE_PREFIX: prefix,
        JOB_RETRY_DELAY: '200ms',
        JOB_MAX_ATTEMPTS: '3',
        JOB_PREFETCH: '{"snapshot":1}',
        OUTBOX_POLL_INTERVAL: '50ms',
        LOG_LEVEL: 'warn',
        NODE_ID: `worker-${mode}`,
        FIXTURE_MODE: mode,
        FIXTURE_LOG: logPath(),
        ...extra,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const output: string[] = []
    child.stdout!.on('data', (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n').filter(Boolean)))
    const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.once('exit', (code, signal) => resolve({code, signal})))
    return {child, output, exited}
  }

  const saw = (worker: Worker, line: string) => waitFor(`a worker to print "${line}"`, () => worker.output.includes(line), 20_000)

  async function completions(): Promise<string[]> {
    return (await readFile(logPath(), 'utf8').catch(() => '')).split('\n').filter(Boolean)
  }

  test('a worker killed mid-job: the message is redelivered and the job completes once', async () => {
    const jobs = new JobRepository(database.db)
    const uploadId = await completedUpload(database.db)
    const first = spawnWorker('hang-first')
    try {
      await saw(first, `started ${uploadId} 1`)
      first.child.kill('SIGKILL')
      assert.equal((await first.exited).signal, 'SIGKILL')
      assert.deepEqual(await completions(), [])
    } finally {
      first.child.kill('SIGKILL')
    }
    const second = spawnWorker('hang-first')
    try {
      await saw(second, `started ${uploadId} 2`)
      const job = await waitFor('the job to succeed', async () => {
        const row = await jobs.find(uploadId, 'snapshot')
        return row?.status === 'succeeded' ? row : undefined
      })
      assert.equal(job.attempts, 2)
      assert.deepEqual(await completions(), [`${uploadId} 2`])
      const [history] = (await jobs.forUpload(uploadId)).filter((j) => j.kind === 'snapshot')
      assert.deepEqual(history!.history.map((a) => a.outcome), ['abandoned', 'succeeded'])
      const look = await inspector()
      try {
        await waitFor('the snapshot queue to be empty', async () => (await look.channel.checkQueue(t.workQueue('snapshot'))).messageCount === 0)
      } finally {
        await look.close()
      }
      second.child.kill('SIGTERM')
      assert.equal((await second.exited).code, 0)
    } finally {
      second.child.kill('SIGKILL')
    }
  })

  test('SIGTERM: the job in flight finishes, nothing new is taken, the worker exits 0', async () => {
    logName = 'graceful.log'
    const jobs = new JobRepository(database.db)
    const a = await completedUpload(database.db)
    const worker = spawnWorker('slow', {FIXTURE_WORK_MS: '1500', SHUTDOWN_TIMEOUT: '10s'})
    try {
      await saw(worker, 'ready')
      const startedLine = await waitFor('a job to start', () => worker.output.find((l) => l.startsWith('started ')))
      // A second job arrives while the first runs; prefetch 1 keeps it in the queue.
      const b = await completedUpload(database.db)
      await new Promise((resolve) => setTimeout(resolve, 300))
      const signalledAt = Date.now()
      worker.child.kill('SIGTERM')
      const {code} = await worker.exited
      assert.equal(code, 0)
      assert.ok(Date.now() - signalledAt < 5000, 'exited well before the shutdown timeout')
      assert.equal(startedLine, `started ${a} 1`)
      assert.deepEqual(await completions(), [`${a} 1`])
      assert.equal((await jobs.find(a, 'snapshot'))!.status, 'succeeded')
      assert.ok(!worker.output.includes(`started ${b} 1`), 'the second job was not started')
      assert.equal((await jobs.find(b, 'snapshot'))?.status ?? 'queued', 'queued')
      const look = await inspector()
      try {
        assert.equal((await look.channel.checkQueue(t.workQueue('snapshot'))).messageCount, 1)
      } finally {
        await look.close()
      }
    } finally {
      worker.child.kill('SIGKILL')
    }
  })

  test('SIGTERM past the shutdown deadline: the job in flight is handed back, exit 0', async () => {
    const jobs = new JobRepository(database.db)
    const look = await inspector()
    await look.channel.purgeQueue(t.workQueue('snapshot'))
    const uploadId = await completedUpload(database.db)
    const worker = spawnWorker('slow', {FIXTURE_WORK_MS: '30000', SHUTDOWN_TIMEOUT: '300ms'})
    try {
      await saw(worker, `started ${uploadId} 1`)
      worker.child.kill('SIGTERM')
      assert.equal((await worker.exited).code, 0)
      const job = (await jobs.find(uploadId, 'snapshot'))!
      assert.equal(job.status, 'queued')
      const [withHistory] = (await jobs.forUpload(uploadId)).filter((j) => j.kind === 'snapshot')
      assert.deepEqual(withHistory!.history.map((h) => h.outcome), ['handed_back'])
      assert.equal((await look.channel.checkQueue(t.workQueue('snapshot'))).messageCount, 1)
    } finally {
      worker.child.kill('SIGKILL')
      await look.close()
    }
  })
})
