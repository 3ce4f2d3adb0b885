/**
 * A transcode worker killed with SIGKILL in the middle of a transcode: the message goes back to
 * the queue, a new worker completes the job, the artifacts play, and nothing half-written is
 * left in the media directory.
 *
 * The node runs in-process as `ingest serve` does with RabbitMQ (it consumes nothing); the
 * workers are `ingest worker --kinds transcode` from the compiled CLI, each in its own process
 * group so the test can see what the kill left running. The workers share the node's DATA_DIR
 * and NODE_ID, so they read the original from disk and write the artifacts where the node
 * serves them: this test is about the kill, not about fetching originals from peers (the
 * cluster tests cover that), and a shared directory is where stray temp files would show.
 *
 * Only the worker's own pid is killed (as the OOM killer does), not its process group (as a
 * container runtime does): ffmpeg, its child, must not outlive it for long.
 */
import assert from 'node:assert/strict'
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {mkdtemp, readdir, readFile, rm, stat} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'
import {after, before, describe, it} from 'node:test'
import type {AmqpBroker} from '../../src/jobs/amqp-broker.js'
import {JobRepository} from '../../src/jobs/job-repository.js'
import {JobRegistry} from '../../src/jobs/registry.js'
import type {Topology} from '../../src/jobs/topology.js'
import {ffprobe, tools} from '../support/media-fixtures.js'
import {removeTopology, testPrefix, waitFor} from '../support/pipeline-support.js'
import {createUpload, PATCH_HEADERS, request} from '../support/http.js'
import {startTestNode, type TestNode} from '../support/node.js'
import {TEST_AMQP_URL, TEST_DATABASE_URL} from '../support/services.js'

const exec = promisify(execFile)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const CLI = path.join(root, 'dist/src/cli/index.js')
const SECONDS = 30 // long enough that the transcode is still running when the test looks (8 s took ~2 s here and raced)
const RENDITIONS = [
  {name: '360p', height: 360, videoBitrate: '800k', audioBitrate: '96k'},
  {name: '240p', height: 240, videoBitrate: '400k', audioBitrate: '64k'},
]

interface Worker {
  child: ChildProcess
  output(): string
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
}

/** Pids of live processes (zombies aside) in process group `pgid`, from /proc. */
async function processGroup(pgid: number): Promise<Array<{pid: number; command: string}>> {
  const members: Array<{pid: number; command: string}> = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const statLine = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    const fields = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z' || Number(fields[2]) !== pgid) continue
    const command = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim()
    members.push({pid: Number(entry), command})
  }
  return members
}

/** Every file and directory under `dir`, relative to it. */
async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true}).catch(() => [] as string[])
  return entries.map(String).sort()
}

describe('worker killed mid-transcode', {timeout: 150_000}, () => {
  let node: TestNode | undefined
  let topology: Topology | undefined
  let sourceDir: string
  const workers: Worker[] = []

  before(async () => {
    await stat(CLI).catch(() => {
      throw new Error('dist/src/cli/index.js is missing: run `npm run build` (npm run test:faults does it first)')
    })
    sourceDir = await mkdtemp(path.join(os.tmpdir(), 'fault-worker-'))
    node = await startTestNode(
      'postgres',
      {amqpUrl: TEST_AMQP_URL, queuePrefix: testPrefix(), nodeId: `fault-node-${process.pid}`, jobRetryDelay: '200ms', jobMaxAttempts: 3, outboxPollInterval: '50ms'},
      {registry: new JobRegistry(), kinds: []}
    )
    topology = (node.pipeline.broker as AmqpBroker).topology
  })

  after(async () => {
    for (const w of workers) {
      try {
        process.kill(-w.child.pid!, 'SIGKILL')
      } catch {}
    }
    await node?.stop()
    if (topology) await removeTopology(topology)
    if (sourceDir) await rm(sourceDir, {recursive: true, force: true})
  })

  function spawnWorker(): Worker {
    const n = node!
    const child = spawn(process.execPath, [CLI, 'worker', '--kinds', 'transcode'], {
      cwd: root,
      detached: true,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        AMQP_URL: TEST_AMQP_URL,
        QUEUE_PREFIX: n.config.queuePrefix,
        DATABASE_URL: TEST_DATABASE_URL,
        DATABASE_SCHEMA: n.config.databaseSchema!,
        DATA_DIR: n.dataDir,
        NODE_ID: n.config.nodeId,
        JOB_RETRY_DELAY: '200ms',
        JOB_MAX_ATTEMPTS: '3',
        OUTBOX_POLL_INTERVAL: '50ms',
        MEDIA_X264_PRESET: 'ultrafast',
        MEDIA_RENDITIONS: JSON.stringify(RENDITIONS),
        SHUTDOWN_TIMEOUT: '5s',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
    const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.once('exit', (code, signal) => resolve({code, signal})))
    const worker = {child, output: () => output, exited}
    workers.push(worker)
    return worker
  }

  it('redelivers the job to a new worker, which completes it with valid artifacts and no stray files', async (t) => {
    const n = node!
    const jobs = new JobRepository(n.db)
    const source = path.join(sourceDir, 'clip.mp4')
    await exec(tools.ffmpegPath, [
      '-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=25:duration=${SECONDS}`,
      '-f', 'lavfi', '-i', `sine=frequency=440:duration=${SECONDS}`,
      '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-shortest', source,
    ])
    const bytes = await readFile(source)
    const first = spawnWorker()

    const url = await createUpload(n.url, bytes.length, {'Upload-Metadata': `filename ${Buffer.from('clip.mp4').toString('base64')}`})
    const uploadId = url.split('/').pop()!
    const patched = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: bytes})
    assert.equal(patched.status, 204, patched.body)

    const running = await waitFor(
      'the transcode to run with some progress',
      async () => {
        if (first.child.exitCode !== null) throw new Error(`the first worker exited:\n${first.output()}`)
        const job = await jobs.find(uploadId, 'transcode')
        if (job?.status === 'succeeded') throw new Error('the transcode finished before the test could kill its worker: make the clip longer')
        // Early enough that the attempt cannot finish between the look and the kill.
        if (job?.status !== 'running' || job.progress <= 0 || job.progress >= 80) return undefined
        // The transcode runs one ffmpeg per output: kill while one of them is running, not between two.
        const group = await processGroup(first.child.pid!)
        return group.some((p) => /ffmpeg/.test(p.command)) ? {job, group} : undefined
      },
      60_000
    ).then(({job, group}) => {
      first.child.kill('SIGKILL')
      return {job, group}
    })
    const during = running.group
    assert.equal((await first.exited).signal, 'SIGKILL')
    process.stdout.write(`# killed the worker at ${running.job.progress} % (attempt ${running.job.attempts}); its group had: ${during.map((p) => path.basename(p.command.split(' ')[0]!)).join(', ')}\n`)
    assert.ok(during.some((p) => /ffmpeg/.test(p.command)), 'ffmpeg was running when the worker was killed')

    // ffmpeg loses its stderr pipe with its parent and ends at its next progress line.
    const left = await waitFor('the killed worker\'s ffmpeg to end', async () => ((await processGroup(first.child.pid!)).length === 0 ? true : undefined), 5000).catch(
      async () => processGroup(first.child.pid!)
    )
    assert.equal(left, true, `nothing of the killed worker is left running: ${JSON.stringify(left)}`)

    const second = spawnWorker()
    const done = await waitFor(
      'the job to succeed on the new worker',
      async () => {
        if (second.child.exitCode !== null) throw new Error(`the second worker exited:\n${second.output()}`)
        const job = await jobs.find(uploadId, 'transcode')
        if (job?.status === 'dead') throw new Error(`the job died: ${job.lastError}`)
        return job?.status === 'succeeded' ? job : undefined
      },
      60_000
    )
    assert.equal(done.attempts, 2)
    const [withHistory] = (await jobs.forUpload(uploadId)).filter((j) => j.kind === 'transcode')
    assert.deepEqual(withHistory!.history.map((a) => a.outcome), ['abandoned', 'succeeded'])

    const status = (await (await fetch(`${n.url}/api/uploads/${uploadId}`)).json()) as {status: string}
    assert.equal(status.status, 'ready')

    const mediaDir = path.join(n.dataDir, 'media', uploadId)
    const files = await walk(mediaDir)
    const video = await ffprobe(path.join(mediaDir, 'video.mp4'))
    assert.ok(Math.abs(Number(video.format.duration) - SECONDS) < 0.5, `the MP4 lasts ${video.format.duration} s`)
    assert.deepEqual(video.streams.map((s) => `${s.codec_type}:${s.codec_name}${s.height ? `:${s.height}` : ''}`).sort(), ['audio:aac', 'video:h264:360'])
    const master = await readFile(path.join(mediaDir, 'hls/master.m3u8'), 'utf8')
    for (const r of RENDITIONS) {
      assert.ok(master.includes(`${r.name}/index.m3u8`), `the master playlist lists ${r.name}`)
      const rendition = await ffprobe(path.join(mediaDir, 'hls', r.name, 'index.m3u8'))
      assert.ok(Math.abs(Number(rendition.format.duration) - SECONDS) < 0.5, `${r.name} lasts ${rendition.format.duration} s`)
    }

    second.child.kill('SIGTERM')
    assert.equal((await second.exited).code, 0, second.output())

    // The next attempt removes the temp paths the killed one left (src/media removeAbandonedTemps).
    await t.test('the killed attempt leaves no temp files in the media directory', async () => {
      const stray = files.filter((f) => f.split(path.sep).some((part) => part.startsWith('.')))
      assert.deepEqual(stray, [], `temp files left by the killed attempt in ${mediaDir}`)
      assert.deepEqual((await walk(path.join(n.dataDir, 'tmp'))).filter((f) => f.startsWith('.')), [], 'no fetched source copies left')
    })
  })
})
