/**
 * `ingest stack` (the README's one command for a node with PostgreSQL, RabbitMQ and its workers
 * on one machine), run from the compiled CLI: it starts an upload node and a media worker as its
 * children, an upload becomes ready with every job settled, and the children stop with the
 * parent: on SIGTERM (exit 0), when one child dies (the parent exits non-zero and takes the rest
 * down), and when the parent itself is killed.
 */
import assert from 'node:assert/strict'
import {mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {retryDelays} from '../src/jobs/job-policies.js'
import {topology} from '../src/jobs/topology.js'
import {writeSmallClip} from './support/media-fixtures.js'
import {removeTopology, testPrefix, waitFor} from './support/pipeline-support.js'
import {CLI, spawnCli, waitHealthy, type CliProcess} from './support/cli-process.js'
import {createUpload, PATCH_HEADERS, request} from './support/http.js'
import {freshSchema} from './support/node.js'
import {freePort} from './support/process-node.js'
import {requireService, TEST_AMQP_URL, TEST_DATABASE_URL} from './support/services.js'

/** Live (not zombie) processes whose parent is `ppid`, with their command lines. */
async function childrenOf(ppid: number): Promise<Array<{pid: number; command: string}>> {
  const found: Array<{pid: number; command: string}> = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z' || Number(fields[1]) !== ppid) continue
    found.push({pid: Number(entry), command: (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim()})
  }
  return found
}

async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

describe('ingest stack: a node and its workers started and stopped together', {timeout: 240_000}, () => {
  const prefix = testPrefix()
  const t = topology(prefix, retryDelays(200, 3), 10)
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let dir: string
  const started: CliProcess[] = []
  const pids: number[] = []

  before(async () => {
    await requireService('RabbitMQ', TEST_AMQP_URL)
    schema = await freshSchema()
    dir = await mkdtemp(path.join(os.tmpdir(), 'ingest-stack-'))
  })

  after(async () => {
    for (const p of started) p.child.kill('SIGKILL')
    // Children a failed test left running (checked to still be ours: a pid can be reused).
    for (const pid of pids) {
      const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
      if (command.includes(CLI)) process.kill(pid, 'SIGKILL')
    }
    await removeTopology(t)
    await schema?.drop()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  /** `ingest stack` on a port of its own, just spawned. */
  async function spawnStack(extra: Record<string, string> = {}) {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const stack = spawnCli(['stack'], {
      DATABASE_URL: TEST_DATABASE_URL,
      DATABASE_SCHEMA: schema.schema,
      AMQP_URL: TEST_AMQP_URL,
      QUEUE_PREFIX: prefix,
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: path.join(dir, `data-${port}`),
      NODE_ID: `stack-${port}`,
      JOB_RETRY_DELAY: '200ms',
      JOB_MAX_ATTEMPTS: '3',
      OUTBOX_POLL_INTERVAL: '50ms',
      MEDIA_X264_PRESET: 'ultrafast',
      MEDIA_RENDITIONS: JSON.stringify([{name: '240p', height: 240, videoBitrate: '300k', audioBitrate: '64k'}]),
      MEDIA_THUMBNAIL_COUNT: '2',
      SHUTDOWN_TIMEOUT: '5s',
      LOG_LEVEL: 'info',
      ...extra,
    })
    started.push(stack)
    return {stack, url}
  }

  /** The stack's two children, once both are running (not necessarily started yet). */
  async function childrenOfStack(stack: CliProcess) {
    const children = await waitFor('the stack to run a node and a worker', async () => {
      const found = await childrenOf(stack.child.pid!)
      const serve = found.find((c) => / serve$/.test(c.command))
      const worker = found.find((c) => / worker --kinds transcode,snapshot$/.test(c.command))
      return serve && worker && found.length === 2 ? {serve, worker} : undefined
    })
    pids.push(children.serve.pid, children.worker.pid)
    return children
  }

  /** `ingest stack` on a port of its own; resolves once the node answers and the worker has started, with its two children. */
  async function startStack(extra: Record<string, string> = {}) {
    const {stack, url} = await spawnStack(extra)
    await waitHealthy(stack, url)
    const children = await childrenOfStack(stack)
    // The worker is up once it logged so (the node's health says nothing about it).
    await waitFor('the worker to start', () => stack.output().includes('"worker started"'), 20_000)
    return {stack, url, ...children}
  }

  test('an upload becomes ready through the stack, and SIGTERM to the parent stops every child, exit 0', async () => {
    const {stack, url, serve, worker} = await startStack()
    const clip = path.join(dir, 'clip.mp4')
    await writeSmallClip(clip)
    const bytes = await readFile(clip)
    const location = await createUpload(url, bytes.length)
    const patched = await request('PATCH', location, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: bytes})
    assert.equal(patched.status, 204, patched.body)
    const uploadId = location.split('/').pop()!
    await waitFor(
      'the upload to be ready with every job succeeded',
      async () => {
        if (stack.child.exitCode !== null) throw new Error(`the stack exited:\n${stack.output()}`)
        const body = (await (await fetch(`${url}/api/uploads/${uploadId}`)).json()) as {status: string; jobs: Array<{kind: string; status: string; lastError: string | null}>}
        const dead = body.jobs.find((j) => j.status === 'dead')
        if (dead) throw new Error(`the ${dead.kind} job died: ${dead.lastError}`)
        return body.status === 'ready' && body.jobs.map((j) => j.kind).sort().join() === 'fanout,snapshot,transcode' && body.jobs.every((j) => j.status === 'succeeded')
      },
      60_000
    )
    const video = await fetch(`${url}/media/${uploadId}/video.mp4`)
    assert.equal(video.status, 200)
    assert.ok((await video.arrayBuffer()).byteLength > 1000)

    const {code} = await stack.stop('SIGTERM')
    assert.equal(code, 0, stack.output())
    assert.equal(await alive(serve.pid), false, 'the node stopped with the parent')
    assert.equal(await alive(worker.pid), false, 'the worker stopped with the parent')
    assert.match(stack.output(), /"stack stopped"/)
  })

  test('a child that dies takes the others down, and the parent exits non-zero', async () => {
    const {stack, serve, worker} = await startStack()
    process.kill(worker.pid, 'SIGKILL')
    const {code} = await stack.exited
    assert.notEqual(code, 0)
    assert.equal(code, 128 + os.constants.signals.SIGKILL, 'the parent exits with the dead child\'s status')
    assert.equal(await alive(serve.pid), false, 'the node was stopped')
  })

  test('the parent killed outright: its children notice and stop by themselves', async () => {
    const {stack, serve, worker} = await startStack()
    stack.child.kill('SIGKILL')
    await stack.exited
    // Each child stops gracefully (SHUTDOWN_TIMEOUT 5s): on a loaded machine that took over 20 s once.
    await waitFor('both children to stop', async () => !(await alive(serve.pid)) && !(await alive(worker.pid)), 60_000)
  })

  test('the parent killed while its children are still starting: they stop too, once started', async () => {
    const {stack} = await spawnStack()
    const {serve, worker} = await childrenOfStack(stack)
    stack.child.kill('SIGKILL')
    await stack.exited
    await waitFor('both children to stop', async () => !(await alive(serve.pid)) && !(await alive(worker.pid)), 60_000)
  })

  test('without RabbitMQ or PostgreSQL the stack refuses to start (exit 2) and says why', async () => {
    const noBroker = spawnCli(['stack'], {DATABASE_URL: TEST_DATABASE_URL, DATA_DIR: path.join(dir, 'refused')})
    assert.equal((await noBroker.exited).code, 2)
    assert.match(noBroker.output(), /stack needs AMQP_URL/)
    const noDatabase = spawnCli(['stack'], {AMQP_URL: TEST_AMQP_URL, DATA_DIR: path.join(dir, 'refused')})
    assert.equal((await noDatabase.exited).code, 2)
    assert.match(noDatabase.output(), /stack needs DATABASE_URL/)
  })
})
