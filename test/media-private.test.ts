/**
 * Private playback (MEDIA_SIGNING_SECRET): a real node transcodes an upload, then /media answers
 * 401 without a token or with an expired one, 403 with another upload's, and 200 with a good one,
 * its playlists rewritten so a crawl (and ffmpeg itself) reaches every file signed.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {promisify} from 'node:util'
import pino from 'pino'
import {snapshotHandler} from '../consumers/snapshot.js'
import {transcodeHandler} from '../consumers/transcode.js'
import {loadConfig} from '../src/config/index.js'
import {JobRegistry, type JobHandler} from '../src/jobs/registry.js'
import {MediaTokens, withToken} from '../src/media/media-tokens.js'
import {startNode, type RunningNode} from '../src/node.js'
import {makeFixtures, type Fixtures} from './support/media-fixtures.js'
import {createUpload, PATCH_HEADERS, request} from './support/http.js'

const SECRET = 'media-signing-secret-for-tests-0123456789'

describe('private /media with signed URLs', () => {
  let node: RunningNode
  let dataDir: string
  let f: Fixtures
  const log = pino({level: 'silent'})
  const tokens = new MediaTokens(SECRET, 60_000)
  let videoId: string

  before(async () => {
    f = await makeFixtures({threeSecondsBlackStart: true})
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'media-private-'))
    const config = loadConfig(
      {},
      {host: '127.0.0.1', port: 0, dataDir, logLevel: 'silent', expirySweepInterval: 0, shutdownTimeout: 2000, searchPath: process.env.PATH, x264Preset: 'ultrafast', jobRetryDelay: 100, mediaSigningSecret: SECRET}
    )
    const handlers: {transcode?: JobHandler<'transcode'>; snapshot?: JobHandler<'snapshot'>} = {}
    const registry = new JobRegistry({transcode: (job, ctx) => handlers.transcode!(job, ctx), snapshot: (job, ctx) => handlers.snapshot!(job, ctx)})
    node = await startNode(config, log, {registry})
    const deps = {config, db: node.db, log, uploads: node.uploads}
    handlers.transcode = transcodeHandler(deps)
    handlers.snapshot = snapshotHandler(deps)

    const body = await readFile(f.threeSecondsBlackStart)
    const url = await createUpload(node.url, body.length)
    assert.equal((await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body})).status, 204)
    videoId = url.split('/').pop()!
    const deadline = Date.now() + 90_000
    for (;;) {
      const s = (await (await fetch(`${node.url}/api/uploads/${videoId}`)).json()) as {jobs: {kind: string; status: string}[]}
      if (['transcode', 'snapshot'].every((k) => s.jobs.some((j) => j.kind === k && ['succeeded', 'dead'].includes(j.status)))) break
      if (Date.now() > deadline) throw new Error(`gave up waiting: ${JSON.stringify(s)}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  })
  after(async () => {
    await node?.close()
    await rm(dataDir, {recursive: true, force: true})
    await f?.cleanup()
  })

  const master = () => `${node.url}/media/${videoId}/hls/master.m3u8`

  it('refuses a request without a token, with an expired or forged one (401) and with another upload’s (403)', async () => {
    assert.equal((await request('GET', master())).status, 401)
    const expired = await tokens.sign(videoId, Date.now() - 120_000)
    const res = await request('GET', withToken(master(), expired))
    assert.equal(res.status, 401)
    assert.match(res.body, /expired/)
    const forged = await new MediaTokens('another-secret-that-is-long-enough-000000', 60_000).sign(videoId)
    assert.equal((await request('GET', withToken(master(), forged))).status, 401)
    assert.equal((await request('GET', withToken(master(), await tokens.sign('some-other-upload')))).status, 403)
    assert.equal((await request('GET', withToken(`${node.url}/media/${videoId}/hls/360p/seg_0000.ts`, await tokens.sign('x')))).status, 403)
  })

  it('serves a good token’s playlists rewritten, and every variant and segment they name with 200', async () => {
    const token = await tokens.sign(videoId)
    const raw = await readFile(path.join(dataDir, 'media', videoId, 'hls', 'master.m3u8'), 'utf8')
    const res = await request('GET', withToken(master(), token))
    assert.equal(res.status, 200)
    assert.equal(res.headers['cache-control'], 'private, max-age=0, must-revalidate')
    assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body))
    assert.notEqual(res.body, raw)
    const variants = res.body.split('\n').filter((l) => l && !l.startsWith('#'))
    assert.ok(variants.length >= 1)
    let segments = 0
    for (const variant of variants) {
      assert.ok(variant.endsWith(`?token=${token}`), variant)
      const v = await request('GET', new URL(variant, master()).href)
      assert.equal(v.status, 200, variant)
      const vUrl = new URL(variant, master()).href
      for (const seg of v.body.split('\n').filter((l) => l && !l.startsWith('#'))) {
        assert.ok(seg.endsWith(`?token=${token}`), seg)
        const s = await fetch(new URL(seg, vUrl))
        assert.equal(s.status, 200, seg)
        assert.equal(s.headers.get('content-type'), 'video/mp2t')
        await s.arrayBuffer()
        segments++
      }
    }
    assert.ok(segments >= 1)
    // The ETag is that of the rewritten bytes, so a cache never mixes them with the file's.
    assert.notEqual(res.headers.etag, (await request('GET', withToken(master(), await tokens.sign(videoId, Date.now() - 1000)))).headers.etag)
    const ranged = await request('GET', withToken(master(), token), {headers: {Range: 'bytes=0-6'}})
    assert.equal(ranged.status, 206)
    assert.equal(ranged.body, res.body.slice(0, 7))
  })

  it('names the sprite in the storyboard cues with the token, and the sprite is served with it', async () => {
    const token = await tokens.sign(videoId)
    const vttUrl = withToken(`${node.url}/media/${videoId}/storyboard/storyboard.vtt`, token)
    const vtt = await request('GET', vttUrl)
    assert.equal(vtt.status, 200)
    const cues = vtt.body.split('\n').filter((l) => l.includes('#xywh='))
    assert.ok(cues.length >= 1)
    for (const cue of cues) assert.match(cue, new RegExp(`^sprite\\.jpg\\?token=${token.replace(/\./g, '\\.')}#xywh=\\d+,\\d+,\\d+,\\d+$`))
    const sprite = await fetch(new URL(cues[0]!.split('#')[0]!, vttUrl))
    assert.equal(sprite.status, 200)
    assert.equal(sprite.headers.get('content-type'), 'image/jpeg')
    assert.equal((await fetch(`${node.url}/media/${videoId}/storyboard/sprite.jpg`)).status, 401)
  })

  it('gives the owner signed artifact URLs in the status API, each served with 200', async () => {
    const s = (await (await fetch(`${node.url}/api/uploads/${videoId}`)).json()) as {artifacts: {path: string; url: string}[]}
    assert.ok(s.artifacts.length >= 4)
    for (const a of s.artifacts) {
      assert.match(a.url, /\?token=[\w-]+\.[\w-]+\.[\w-]+$/, a.path)
      const res = await fetch(a.url)
      assert.equal(res.status, 200, a.path)
      await res.arrayBuffer()
      assert.equal((await fetch(a.url.split('?')[0]!)).status, 401, a.path)
    }
  })

  it('gives signed URLs in the event stream too: every artifact.created carries one, served with 200', async () => {
    const abort = new AbortController()
    const res = await fetch(`${node.url}/api/uploads/${videoId}/events`, {signal: abort.signal})
    assert.equal(res.status, 200)
    const created: Array<{path: string; url: string}> = []
    let text = ''
    const decoder = new TextDecoder()
    // The stream replays the upload's outbox events, then its status: read up to the status.
    const reader = res.body!.getReader()
    while (!/\nevent: status\n/.test(text)) {
      const {value, done} = await reader.read()
      if (done) break
      text += decoder.decode(value, {stream: true})
    }
    abort.abort()
    for (const block of text.split('\n\n')) {
      if (!/^event: artifact\.created$/m.test(block)) continue
      created.push(JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as {path: string; url: string})
    }
    assert.ok(created.length >= 4, `${created.length} artifact.created events`)
    for (const a of created.filter((c) => !c.path.endsWith('.ts')).slice(0, 8)) {
      assert.match(a.url, new RegExp(`/media/${videoId}/.+\\?token=[\\w-]+\\.[\\w-]+\\.[\\w-]+$`), a.path)
      const served = await fetch(a.url)
      assert.equal(served.status, 200, a.path)
      await served.arrayBuffer()
    }
  })

  it('lets ffmpeg read the whole signed playlist', async () => {
    const token = await tokens.sign(videoId)
    const {stderr} = await promisify(execFile)('ffmpeg', ['-hide_banner', '-v', 'error', '-i', withToken(master(), token), '-map', '0:v:0', '-f', 'null', '-'], {timeout: 60_000})
    assert.equal(stderr.trim(), '')
    const {stdout} = await promisify(execFile)('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', withToken(master(), token)], {timeout: 60_000})
    assert.ok(Number(stdout.trim().split('\n')[0]) >= 60, `frames read: ${stdout}`)
  })
})
