/**
 * Issue 17, point 11: a non-video is refused while it arrives. tus in 256 KiB chunks against a
 * real node on PostgreSQL: once the first MiB is on disk, ffprobe looks at it in the background;
 * text, a zip, a program, a PNG or a JPEG gets 415 with the reason on a PATCH before its last
 * chunk, its row ends failed with that reason, its file is removed, no job runs. A faststart MP4
 * and a MOV with its moov box last complete and transcode; MEDIA_MAX_DURATION refuses a longer
 * input the same way; an ffprobe that crashes refuses nothing.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {access, chmod, mkdtemp, open, rm, stat, writeFile} from 'node:fs/promises'
import {request as httpRequest} from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {Readable} from 'node:stream'
import {promisify} from 'node:util'
import pino from 'pino'
import {snapshotHandler} from '../consumers/snapshot.js'
import {transcodeHandler} from '../consumers/transcode.js'
import {JobRegistry, type JobHandler} from '../src/jobs/registry.js'
import {INSPECT_AFTER_BYTES} from '../src/uploads/early-inspection.js'
import {ffmpeg} from './support/media-corpus.js'
import {createUpload, PATCH_HEADERS, request, TUS, type RawResponse} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

const exec = promisify(execFile)
const CHUNK = 256 << 10
const LADDER = [{name: '180p', height: 180, videoBitrate: '300k', audioBitrate: '64k'}]

interface StatusView {
  status: string
  failureReason: string | null
  jobs: {kind: string; status: string}[]
}

let dir: string
const inputs: Record<string, string> = {}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'early-refusal-'))
  const file = (name: string) => (inputs[name] = path.join(dir, name))
  await writeFile(file('notes.txt'), Array.from({length: 400_000}, (_, i) => `line ${i}: nothing to see here, just words\n`).join(''))
  const noise = path.join(dir, 'noise.bin')
  await writeFile(noise, Buffer.alloc(12 << 20, 7).map((_, i) => (i * 2654435761) >>> 24))
  await exec('zip', ['-q', '-0', file('archive.zip'), noise])
  const picture = 'nullsrc=size=3000x3000,geq=lum=random(1)*255:cb=128:cr=128'
  await ffmpeg(['-f', 'lavfi', '-i', picture, '-frames:v', '1', file('noise.png')])
  await ffmpeg(['-f', 'lavfi', '-i', picture, '-frames:v', '1', '-q:v', '1', file('noise.jpg')])
  // 5 s at a bitrate that makes a few MiB: the look happens while it is still arriving.
  const clip = ['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25:duration=5', '-f', 'lavfi', '-i', 'sine=duration=5', '-vf', 'noise=alls=30:allf=t', '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '5M', '-c:a', 'aac', '-shortest']
  await ffmpeg([...clip, '-movflags', '+faststart', file('faststart.mp4')])
  await ffmpeg([...clip, '-f', 'mov', file('moov-last.mov')])
  for (const name of ['noise.png', 'noise.jpg', 'faststart.mp4', 'moov-last.mov']) {
    assert.ok((await stat(inputs[name]!)).size > 3 * INSPECT_AFTER_BYTES, `${name} is big enough to be looked at while arriving`)
  }
})
after(() => rm(dir, {recursive: true, force: true}))

/** A node with the media consumers (transcode, snapshot) on its own PostgreSQL schema. */
async function mediaNode(overrides: Parameters<typeof startTestNode>[1] = {}): Promise<TestNode> {
  const handlers: {transcode?: JobHandler<'transcode'>; snapshot?: JobHandler<'snapshot'>} = {}
  const registry = new JobRegistry({transcode: (job, ctx) => handlers.transcode!(job, ctx), snapshot: (job, ctx) => handlers.snapshot!(job, ctx)})
  const node = await startTestNode('postgres', {x264Preset: 'ultrafast', jobRetryDelay: 100, renditions: LADDER, thumbnailCount: 1, ...overrides}, {registry})
  const deps = {config: node.config, db: node.db, log: pino({level: 'silent'}), uploads: node.uploads}
  handlers.transcode = transcodeHandler(deps)
  handlers.snapshot = snapshotHandler(deps)
  return node
}

/** The first `bytes` of a file (all of it by default). */
async function readHead(file: string, bytes: number): Promise<Buffer> {
  const handle = await open(file, 'r')
  try {
    const head = Buffer.alloc(bytes)
    const {bytesRead} = await handle.read(head, 0, bytes, 0)
    return head.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

/**
 * Sends the file in 256 KiB PATCHes, pausing between those past the first MiB as a client on a
 * real network would, until one is not 204 or `limit` bytes are sent; returns where it stopped.
 */
async function sendInChunks(url: string, file: string, limit = Number.POSITIVE_INFINITY): Promise<{offset: number; last: RawResponse}> {
  const size = (await stat(file)).size
  const body = await readHead(file, Math.min(size, limit))
  let offset = 0
  for (;;) {
    const chunk = body.subarray(offset, offset + CHUNK)
    const last = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': offset}, body: chunk})
    if (last.status !== 204) return {offset, last}
    offset += chunk.length
    if (offset >= body.length) return {offset, last}
    if (offset >= INSPECT_AFTER_BYTES) await new Promise((r) => setTimeout(r, 100))
  }
}

async function statusOf(node: TestNode, id: string): Promise<StatusView> {
  return (await (await fetch(`${node.url}/api/uploads/${id}`)).json()) as StatusView
}

async function waitFor(node: TestNode, id: string, done: (s: StatusView) => boolean): Promise<StatusView> {
  const deadline = Date.now() + 90_000
  for (;;) {
    const s = await statusOf(node, id)
    if (done(s)) return s
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${JSON.stringify(s)}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function assertRefused(node: TestNode, file: string, size: number, reason: RegExp): Promise<void> {
  const url = await createUpload(node.url, size)
  const id = url.split('/').pop()!
  const {offset, last} = await sendInChunks(url, file)
  assert.equal(last.status, 415, `the PATCH at ${offset} answered ${last.status} ${last.body}`)
  assert.match(last.body, reason)
  assert.ok(offset >= INSPECT_AFTER_BYTES && offset < size, `refused at ${offset} of ${size} bytes: after the first MiB, before the end`)
  const head = await request('HEAD', url, {headers: TUS})
  assert.equal(head.status, 415, 'a HEAD reports the refusal too')
  const row = await node.uploads.findById(id)
  assert.equal(row?.status, 'failed')
  assert.match(row?.failureReason ?? '', reason)
  const view = await statusOf(node, id)
  assert.deepEqual([view.status, view.failureReason], ['failed', row?.failureReason])
  await assert.rejects(access(node.store.filePath(id)), {code: 'ENOENT'}, 'its file is removed')
  // A PATCH that read the row just before the refusal reaches the store's write with the file gone: 415 too, not a 500.
  await assert.rejects(node.store.write(Readable.from([Buffer.alloc(16)]), id, offset), (error: {status_code?: number; message: string}) => {
    assert.equal(error.status_code, 415, error.message)
    assert.match(error.message, reason)
    return true
  })
  const events = (await node.db.query(`SELECT topic FROM outbox WHERE upload_id = $1`, [id])) as {topic: string}[]
  assert.deepEqual(events.map((e) => e.topic), ['upload.failed'], 'announced as failed, never completed')
  await new Promise((r) => setTimeout(r, 300))
  assert.deepEqual((await statusOf(node, id)).jobs, [], 'no job')
}

describe('refusing a non-video while it arrives', () => {
  let node: TestNode
  before(async () => (node = await mediaNode()))
  after(() => node?.stop())

  const cases: [string, RegExp][] = [
    ['notes.txt', /file is not a video \(it contains text\)/],
    ['archive.zip', /file is not a video \(it is a ZIP archive\)/],
    ['noise.png', /file is not a video \(it is a PNG image\)/],
    ['noise.jpg', /file is not a video \(it is a JPEG image\)/],
  ]
  for (const [name, reason] of cases) {
    it(`${name}: 415 on a PATCH after the first MiB, failed with the reason, file gone, no job`, async () => {
      await assertRefused(node, inputs[name]!, (await stat(inputs[name]!)).size, reason)
    })
  }

  it('one long PATCH (a client that sends the whole file at once) is stopped with 415 while it is still sending', async () => {
    const file = inputs['notes.txt']!
    const body = await readHead(file, (await stat(file)).size)
    const url = await createUpload(node.url, body.length)
    let sent = 0
    const answer = await new Promise<{status: number; text: string; sentWhenAnswered: number}>((resolve, reject) => {
      const req = httpRequest(url, {method: 'PATCH', headers: {...PATCH_HEADERS, 'Upload-Offset': '0', 'Content-Length': String(body.length)}}, (res) => {
        const sentWhenAnswered = sent
        let text = ''
        res.on('data', (c: Buffer) => (text += c.toString()))
        res.on('end', () => resolve({status: res.statusCode ?? 0, text, sentWhenAnswered}))
      })
      req.on('error', () => {})
      const pump = async () => {
        while (sent < body.length && !req.destroyed) {
          req.write(body.subarray(sent, sent + CHUNK))
          sent += Math.min(CHUNK, body.length - sent)
          await new Promise((r) => setTimeout(r, sent > INSPECT_AFTER_BYTES ? 100 : 5))
        }
        req.end()
      }
      pump().catch(reject)
    })
    assert.equal(answer.status, 415, answer.text)
    assert.match(answer.text, /file is not a video \(it contains text\)/)
    assert.ok(answer.sentWhenAnswered < body.length, `answered after ${answer.sentWhenAnswered} of ${body.length} bytes`)
    const id = url.split('/').pop()!
    assert.equal((await node.uploads.findById(id))?.status, 'failed')
    await assert.rejects(access(node.store.filePath(id)), {code: 'ENOENT'})
  })

  it('a program (the node binary): refused the same way, long before its end', async () => {
    const size = (await stat(process.execPath)).size
    await assertRefused(node, process.execPath, size, /file is not a video \(it is a program\)/)
  })

  it('random bytes (no known kind) are not refused early: the upload completes and is judged whole', async () => {
    const file = path.join(dir, 'random.bin')
    await writeFile(file, randomBytes(3 << 20))
    const url = await createUpload(node.url, 3 << 20)
    const {offset, last} = await sendInChunks(url, file)
    assert.deepEqual([last.status, offset], [204, 3 << 20], last.body)
    assert.ok((await node.uploads.findById(url.split('/').pop()!))?.completedAt, 'completed')
  })

  it('a partial upload (tus concatenation) is a piece of a file: not looked at, even when it is text', async () => {
    const file = inputs['notes.txt']!
    const limit = 3 << 20
    const url = await createUpload(node.url, limit, {'Upload-Concat': 'partial'})
    const {offset, last} = await sendInChunks(url, file, limit)
    assert.deepEqual([last.status, offset], [204, limit], last.body)
    assert.equal((await node.uploads.findById(url.split('/').pop()!))?.status, 'completed')
  })

  for (const name of ['faststart.mp4', 'moov-last.mov']) {
    it(`${name}: completes and transcodes to ready`, async () => {
      const size = (await stat(inputs[name]!)).size
      const url = await createUpload(node.url, size)
      const {offset, last} = await sendInChunks(url, inputs[name]!)
      assert.deepEqual([last.status, offset], [204, size], last.body)
      const id = url.split('/').pop()!
      // Ready comes with the first playable rendition, before the transcode job has settled: wait for both.
      const transcoded = (v: StatusView) => v.jobs.some((j) => j.kind === 'transcode' && ['succeeded', 'failed', 'dead'].includes(j.status))
      const s = await waitFor(node, id, (v) => v.status === 'failed' || (v.status === 'ready' && transcoded(v)))
      assert.equal(s.status, 'ready', JSON.stringify(s))
      assert.ok(s.jobs.some((j) => j.kind === 'transcode' && j.status === 'succeeded'), JSON.stringify(s.jobs))
    })
  }
})

describe('MEDIA_MAX_DURATION', () => {
  let node: TestNode
  before(async () => (node = await mediaNode({mediaMaxDuration: '2s'})))
  after(() => node?.stop())

  it('a 5 s faststart MP4 against 2s: refused while arriving, from the duration its header declares', async () => {
    await assertRefused(node, inputs['faststart.mp4']!, (await stat(inputs['faststart.mp4']!)).size, /the file is 5 seconds long, more than the 2 seconds this service accepts/)
  })

  it('a 5 s MOV with its moov box last: cannot be told early, completes, then fails with the same reason (no retries)', async () => {
    const size = (await stat(inputs['moov-last.mov']!)).size
    const url = await createUpload(node.url, size)
    const {last} = await sendInChunks(url, inputs['moov-last.mov']!)
    assert.equal(last.status, 204, last.body)
    const id = url.split('/').pop()!
    const s = await waitFor(node, id, (v) => v.status === 'failed' && v.jobs.some((j) => j.kind === 'transcode' && ['dead', 'failed'].includes(j.status)))
    assert.match(s.failureReason ?? '', /the file is 5 seconds long, more than the 2 seconds/)
  })

  it('is validated at start: a malformed value names the variable', async () => {
    const {loadConfig} = await import('../src/config/index.js')
    assert.throws(() => loadConfig({MEDIA_MAX_DURATION: 'two hours'}, {dataDir: dir}), /invalid MEDIA_MAX_DURATION/)
    assert.equal(loadConfig({MEDIA_MAX_DURATION: '2h'}, {dataDir: dir}).mediaMaxDuration, 7_200_000)
    assert.equal(loadConfig({}, {dataDir: dir}).mediaMaxDuration, undefined)
  })
})

describe('an ffprobe that crashes refuses nothing', () => {
  let node: TestNode
  before(async () => {
    const segfaulting = path.join(dir, 'segfaulting-ffprobe')
    await writeFile(segfaulting, '#!/bin/sh\nkill -SEGV $$\n')
    await chmod(segfaulting, 0o755)
    node = await startTestNode('postgres', {ffprobePath: segfaulting})
  })
  after(() => node?.stop())

  it('a text upload whose look crashed completes normally (judged whole later)', async () => {
    const file = inputs['notes.txt']!
    const size = (await stat(file)).size
    const url = await createUpload(node.url, size)
    const {offset, last} = await sendInChunks(url, file)
    assert.deepEqual([last.status, offset], [204, size], last.body)
    assert.equal((await node.uploads.findById(url.split('/').pop()!))?.status, 'completed')
  })
})
