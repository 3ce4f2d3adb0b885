/**
 * The embedded default end to end: one node process with the in-process broker. A completed
 * upload's jobs run through the handlers plugged in, show in the status API, jobs still owed
 * when the node stops are taken up again when it starts, and so is a job its worker left running.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import pino from 'pino'
import {loadConfig} from '../src/config/index.js'
import {transcodeOnDead, transcodeWork} from '../consumers/transcode.js'
import {Outcome} from '../src/jobs/outcome.js'
import {JobRegistry, type DeadJobHook} from '../src/jobs/registry.js'
import {FfmpegTimedOut} from '../src/media/index.js'
import {startNode, type RunningNode} from '../src/node.js'
import {createUpload, PATCH_HEADERS, request} from './support/http.js'
import {waitFor} from './support/pipeline-support.js'

interface JobView {
  kind: string
  status: string
  attempts: number
  progress: number
  worker: string | null
  lastError: string | null
  summary: string | null
  history: Array<{attempt: number; worker: string; outcome: string | null; error: string | null; summary: string | null}>
}

describe('the embedded pipeline (in-process broker)', {timeout: 90_000}, () => {
  let dataDir: string

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ingest-embedded-'))
  })

  after(async () => {
    await rm(dataDir, {recursive: true, force: true})
  })

  const start = (registry: JobRegistry): Promise<RunningNode> =>
    startNode(
      loadConfig({}, {host: '127.0.0.1', port: 0, dataDir, logLevel: 'silent', expirySweepInterval: 0, shutdownTimeout: 2000, outboxPollInterval: 50}),
      pino({level: 'silent'}),
      {registry}
    )

  async function upload(node: RunningNode): Promise<string> {
    const url = await createUpload(node.url, 4)
    const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abcd'})
    assert.equal(res.status, 204)
    return url.split('/').pop()!
  }

  async function jobsOf(node: RunningNode, id: string): Promise<JobView[]> {
    const res = await request('GET', `${node.url}/api/uploads/${id}`)
    assert.equal(res.status, 200)
    return (JSON.parse(res.body) as {jobs: JobView[]}).jobs
  }

  test('a transcode that fails every attempt is made dead by the runner, and its onDead hook marks the upload failed', async () => {
    let onDead: DeadJobHook<'transcode'> | undefined
    let runs = 0
    const handler = transcodeWork({
      transcode: async () => {
        runs++
        throw new FfmpegTimedOut(1, 'ffmpeg -i source.mp4', '')
      },
    })
    const config = loadConfig({}, {host: '127.0.0.1', port: 0, dataDir: path.join(dataDir, 'dead'), logLevel: 'silent', expirySweepInterval: 0, shutdownTimeout: 2000, outboxPollInterval: 50, jobMaxAttempts: 2, jobRetryDelay: 50})
    const node = await startNode(config, pino({level: 'silent'}), {registry: new JobRegistry().register('transcode', handler, (job, death, context) => onDead!(job, death, context))})
    onDead = transcodeOnDead({db: node.db})
    try {
      const id = await upload(node)
      const upload_ = await waitFor('the upload to be failed', async () => {
        const row = await node.uploads.findById(id)
        return row?.status === 'failed' ? row : undefined
      })
      assert.equal(upload_.failureReason, 'transcode took longer than its time limit; the video could not be processed')
      const [transcode] = (await jobsOf(node, id)).filter((j) => j.kind === 'transcode')
      assert.equal(transcode!.status, 'dead')
      assert.equal(transcode!.attempts, 2)
      assert.equal(runs, 2, 'retried once, by the runner, then given up')
      assert.deepEqual(transcode!.history.map((a) => a.outcome), ['failed', 'dead'])
    } finally {
      await node.close()
    }
  })

  test('a completed upload runs its jobs and the status API shows them', async () => {
    let runs = 0
    const node = await start(
      new JobRegistry().register('snapshot', async (job, context) => {
        runs++
        await context.progress(50)
        return (await node.uploads.findById(job.uploadId)) ? Outcome.succeeded('poster, 5 thumbnails') : Outcome.skipped('the upload has vanished')
      })
    )
    try {
      const id = await upload(node)
      const jobs = await waitFor('the snapshot job to succeed', async () => {
        const all = await jobsOf(node, id)
        return all.find((j) => j.kind === 'snapshot')?.status === 'succeeded' ? all : undefined
      })
      const snapshot = jobs.find((j) => j.kind === 'snapshot')!
      assert.equal(snapshot.attempts, 1)
      assert.equal(snapshot.progress, 100)
      assert.deepEqual(snapshot.history.map((h) => [h.outcome, h.error, h.summary]), [['succeeded', null, 'poster, 5 thumbnails']])
      assert.deepEqual([snapshot.summary, snapshot.lastError], ['poster, 5 thumbnails', null], 'the status API shows what it did as a summary, not an error')
      // No transcode handler in this process: the job is owed, and says so.
      assert.equal(jobs.find((j) => j.kind === 'transcode')?.status, 'queued')
      assert.equal(runs, 1)
    } finally {
      await node.close()
    }
  })

  test('jobs still owed when the node stops run after it starts again', async () => {
    const first = await start(new JobRegistry())
    let id: string
    try {
      id = await upload(first)
      await waitFor('the jobs to be recorded', async () => (await jobsOf(first, id)).length === 2)
    } finally {
      await first.close()
    }
    const ran: string[] = []
    const second = await start(
      new JobRegistry()
        .register('snapshot', async (job) => {
          ran.push(`snapshot ${job.uploadId}`)
          return Outcome.succeeded()
        })
        .register('transcode', async (job) => {
          ran.push(`transcode ${job.uploadId}`)
          return Outcome.succeeded()
        })
    )
    try {
      await waitFor('both jobs to succeed', async () => {
        const jobs = await jobsOf(second, id)
        return jobs.length === 2 && jobs.every((j) => j.status === 'succeeded')
      })
      // Each ran once (the first test's transcode, owed since then, runs here too).
      assert.deepEqual(ran.filter((r) => r.endsWith(id)).sort(), [`snapshot ${id}`, `transcode ${id}`])
    } finally {
      await second.close()
    }
  })

  test('a job left running when the node died is taken over, not taken for a duplicate, when it starts again', async () => {
    const first = await start(new JobRegistry())
    let id: string
    try {
      id = await upload(first)
      await waitFor('the jobs to be recorded', async () => (await jobsOf(first, id)).length === 2)
      // As a worker that died mid-attempt leaves it: running, with its attempt open.
      const started = await first.pipeline.jobs.begin(id, 'snapshot', 'died-node')
      assert.equal(started.run, true)
    } finally {
      await first.close()
    }
    let runs = 0
    const second = await start(
      new JobRegistry().register('snapshot', async (job) => {
        if (job.uploadId === id) runs++
        return Outcome.succeeded()
      })
    )
    try {
      const snapshot = await waitFor('the snapshot job to succeed', async () => (await jobsOf(second, id)).find((j) => j.kind === 'snapshot' && j.status === 'succeeded'))
      assert.equal(snapshot.attempts, 2)
      assert.deepEqual(snapshot.history.map((h) => [h.attempt, h.worker, h.outcome]), [
        [1, 'died-node', 'abandoned'],
        [2, snapshot.worker, 'succeeded'],
      ])
      assert.notEqual(snapshot.worker, 'died-node')
      assert.equal(runs, 1)
    } finally {
      await second.close()
    }
  })
})
