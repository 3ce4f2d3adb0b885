/**
 * End to end over HTTP: a real node with the media consumers, uploads sent with tus, the job
 * pipeline running transcode and snapshot, then the status API and the /media route (content
 * types, Range 206/416, ETag/304, caching, path traversal refused).
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import pino from 'pino'
import {snapshotHandler} from '../consumers/snapshot.js'
import {transcodeHandler} from '../consumers/transcode.js'
import {loadConfig} from '../src/config/index.js'
import {JobRegistry, type JobHandler} from '../src/jobs/registry.js'
import {startNode, type RunningNode} from '../src/node.js'
import {openCorpus, type Corpus} from './support/media-corpus.js'
import {makeFixtures, type Fixtures} from './support/media-fixtures.js'
import {createUpload, PATCH_HEADERS, request} from './support/http.js'

/** The default ladder and a 180p rung, so the 640x360 clip gets two renditions and its master playlist grows. */
const LADDER = [...loadConfig({}, {dataDir: '/tmp/unused'}).renditions, {name: '180p', height: 180, videoBitrate: '300k', audioBitrate: '64k'}]
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex')

interface UploadStatusView {
  status: string
  failureReason: string | null
  jobs: {kind: string; status: string; attempts: number; progress: number}[]
  artifacts: {kind: string; rendition: string | null; path: string; sha256: string; contentType: string; url: string}[]
}

describe('media over HTTP, through the job pipeline', () => {
  let node: RunningNode
  let dataDir: string
  let f: Fixtures
  let corpus: Corpus
  const log = pino({level: 'silent'})

  before(async () => {
    f = await makeFixtures({threeSecondsBlackStart: true, textAsMp4: true})
    corpus = await openCorpus()
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'media-http-'))
    const config = loadConfig(
      {},
      {host: '127.0.0.1', port: 0, dataDir, logLevel: 'silent', expirySweepInterval: 0, shutdownTimeout: 2000, searchPath: process.env.PATH, x264Preset: 'ultrafast', jobRetryDelay: 100, renditions: LADDER}
    )
    // The handlers need the node's database, which exists once the node has started.
    const handlers: {transcode?: JobHandler<'transcode'>; snapshot?: JobHandler<'snapshot'>} = {}
    const registry = new JobRegistry({transcode: (job, ctx) => handlers.transcode!(job, ctx), snapshot: (job, ctx) => handlers.snapshot!(job, ctx)})
    node = await startNode(config, log, {registry})
    const deps = {config, db: node.db, log, uploads: node.uploads}
    handlers.transcode = transcodeHandler(deps)
    handlers.snapshot = snapshotHandler(deps)
  })
  after(async () => {
    await node?.close()
    await rm(dataDir, {recursive: true, force: true})
    await f?.cleanup()
    await corpus?.cleanup()
  })

  async function upload(file: string): Promise<string> {
    const body = await readFile(file)
    const url = await createUpload(node.url, body.length)
    const res = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body})
    assert.equal(res.status, 204, res.body)
    return url.split('/').pop()!
  }

  async function statusOf(id: string): Promise<UploadStatusView> {
    return (await (await fetch(`${node.url}/api/uploads/${id}`)).json()) as UploadStatusView
  }

  async function waitFor(id: string, done: (s: UploadStatusView) => boolean): Promise<UploadStatusView> {
    const deadline = Date.now() + 90_000
    for (;;) {
      const s = await statusOf(id)
      if (done(s)) return s
      if (Date.now() > deadline) throw new Error(`gave up waiting: ${JSON.stringify(s)}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  const finished = (s: UploadStatusView) => ['transcode', 'snapshot'].every((k) => s.jobs.some((j) => j.kind === k && ['succeeded', 'dead'].includes(j.status)))

  let videoId: string
  let artifacts: UploadStatusView['artifacts']

  it('takes an uploaded video to ready, with its artifacts listed with URLs in the status API', async () => {
    videoId = await upload(f.threeSecondsBlackStart)
    const s = await waitFor(videoId, finished)
    assert.equal(s.status, 'ready')
    assert.deepEqual(s.jobs.filter((j) => j.kind !== 'fanout').map((j) => [j.kind, j.status, j.progress]).sort(), [['snapshot', 'succeeded', 100], ['transcode', 'succeeded', 100]])
    artifacts = s.artifacts
    const listed = artifacts.map((a) => `${a.kind}:${a.path}`).sort()
    for (const expected of ['mp4:video.mp4', 'hls:hls/master.m3u8', 'hls:hls/360p/index.m3u8', 'poster:poster.jpg', 'thumbnail:thumbs/thumb_05.jpg', 'storyboard:storyboard/sprite.jpg', 'storyboard:storyboard/storyboard.vtt']) {
      assert.ok(listed.includes(expected), `${expected} in ${listed.join(', ')}`)
    }
    assert.ok(!listed.some((a) => a.endsWith('.ts')), 'segments are reached through playlists, not listed')
    for (const a of artifacts) assert.ok(a.url.startsWith(`${node.url}/media/${videoId}/`), a.url)
  })

  it('serves each artifact with its content type and caching', async () => {
    const expect = {'video.mp4': 'video/mp4', 'hls/master.m3u8': 'application/vnd.apple.mpegurl', 'hls/360p/seg_0000.ts': 'video/mp2t', 'poster.jpg': 'image/jpeg', 'storyboard/storyboard.vtt': 'text/vtt; charset=utf-8'}
    for (const [file, type] of Object.entries(expect)) {
      const res = await request('GET', `${node.url}/media/${videoId}/${file}`)
      assert.equal(res.status, 200, file)
      assert.equal(res.headers['content-type'], type, file)
      assert.match(String(res.headers.etag), /^"[0-9a-f]{64}"$/)
      assert.equal(res.headers['cache-control'], file.endsWith('master.m3u8') ? 'public, max-age=0, must-revalidate' : 'public, max-age=31536000, immutable', file)
    }
  })

  it('describes the master playlist as served: one row, its ETag the hash of its bytes after the ladder grew', async () => {
    const res = await request('GET', `${node.url}/media/${videoId}/hls/master.m3u8`)
    assert.equal(res.status, 200)
    assert.deepEqual(res.body.match(/^\d+p\/index\.m3u8$/gm), ['360p/index.m3u8', '180p/index.m3u8'])
    assert.equal(res.headers.etag, `"${sha256(res.body)}"`)
    const masters = (await statusOf(videoId)).artifacts.filter((a) => a.path === 'hls/master.m3u8')
    assert.deepEqual(masters.map((a) => [a.kind, a.rendition, a.sha256]), [['hls', null, sha256(res.body)]], 'listed once, with the hash of the bytes served')
    // What a player that loaded it when the upload became ready holds: the one-variant playlist.
    const early = res.body.split('\n').filter((line) => !line.includes('640x360') && line !== '360p/index.m3u8').join('\n')
    const revalidated = await request('GET', `${node.url}/media/${videoId}/hls/master.m3u8`, {headers: {'If-None-Match': `"${sha256(early)}"`}})
    assert.equal(revalidated.status, 200, 'a stale ETag gets the grown playlist')
    assert.equal((await request('GET', `${node.url}/media/${videoId}/hls/master.m3u8`, {headers: {'If-None-Match': String(res.headers.etag)}})).status, 304)
  })

  it('answers Range requests with 206 and unsatisfiable ones with 416, and If-None-Match with 304', async () => {
    const url = `${node.url}/media/${videoId}/video.mp4`
    const full = await request('GET', url)
    const size = Number(full.headers['content-length'])
    const part = await request('GET', url, {headers: {Range: 'bytes=0-99'}})
    assert.equal(part.status, 206)
    assert.equal(part.headers['content-range'], `bytes 0-99/${size}`)
    assert.equal(part.headers['content-length'], '100')
    const tail = await request('GET', url, {headers: {Range: 'bytes=-10'}})
    assert.equal(tail.status, 206)
    assert.equal(tail.headers['content-range'], `bytes ${size - 10}-${size - 1}/${size}`)
    const beyond = await request('GET', url, {headers: {Range: `bytes=${size}-`}})
    assert.equal(beyond.status, 416)
    assert.equal(beyond.headers['content-range'], `bytes */${size}`)
    const cached = await request('GET', url, {headers: {'If-None-Match': String(full.headers.etag)}})
    assert.equal(cached.status, 304)
    const stale = await request('GET', url, {headers: {Range: 'bytes=0-9', 'If-Range': '"0000"'}})
    assert.equal(stale.status, 200, 'If-Range that does not match: the whole file')
  })

  it('never serves a file outside the media directory, or a temp file', async () => {
    for (const evil of [`${videoId}/../../uploads/${videoId}`, `${videoId}/%2e%2e/%2e%2e/uploads/${videoId}`, `${videoId}/..%2f..%2fuploads%2f${videoId}`, `${videoId}/video.mp4%00.jpg`, `${videoId}/.video.mp4.tmp-1234.mp4`, `..%2f..%2f..%2fetc/passwd`, `${videoId}/%E0%A4%A`]) {
      const res = await request('GET', `${node.url}/media/${evil}`)
      assert.ok(res.status === 400 || res.status === 404, `${evil}: ${res.status}`)
      assert.doesNotMatch(res.body, /ftyp|root:/)
    }
    assert.equal((await request('GET', `${node.url}/media/${videoId}/missing.mp4`)).status, 404)
  })

  it('fails a text file named .mp4 with a reason a person understands, without retrying', async () => {
    const id = await upload(f.textAsMp4)
    const s = await waitFor(id, finished)
    assert.equal(s.status, 'failed')
    assert.equal(s.failureReason, 'file is not a video (it contains text)')
    const transcode = s.jobs.find((j) => j.kind === 'transcode')!
    assert.deepEqual([transcode.status, transcode.attempts], ['dead', 1])
  })

  it('a black video with sound is ready, with its poster, thumbnails and storyboard recorded by one snapshot attempt', async () => {
    const id = await upload(await corpus.get('blackWithAudio'))
    const s = await waitFor(id, finished)
    assert.equal(s.status, 'ready')
    const snapshot = s.jobs.find((j) => j.kind === 'snapshot')!
    assert.deepEqual([snapshot.status, snapshot.attempts], ['succeeded', 1])
    const listed = s.artifacts.map((a) => a.path)
    for (const expected of ['poster.jpg', 'thumbs/thumb_01.jpg', 'thumbs/thumb_05.jpg', 'storyboard/sprite.jpg']) assert.ok(listed.includes(expected), `${expected} in ${listed.join(', ')}`)
    assert.equal((await request('GET', `${node.url}/media/${id}/poster.jpg`)).status, 200)
  })
})
