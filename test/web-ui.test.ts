/**
 * The upload page in real headless Chromium (Debian's, driven by playwright-core; no browser
 * download): a generated video uploaded through the Uppy Dashboard, paused and resumed,
 * the page reloaded mid-upload and the upload carried on from the server's offset, the card
 * following processing to `ready`, and the player playing it. A screenshot of the finished
 * page goes to test-artifacts/web-ui.png. A second node with auth on checks the token field.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, rm, stat} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {promisify} from 'node:util'
import {SignJWT} from 'jose'
import {chromium, type BrowserContext, type Page} from 'playwright-core'
import {loadConfig} from '../src/config/index.js'
import {buildWeb} from '../web/build.mjs'
import {tools} from './support/media-fixtures.js'
import {startTestNode, type TestNode} from './support/node.js'

const exec = promisify(execFile)
const CHROMIUM = '/usr/bin/chromium'
const CHUNK = 256 * 1024
const SECRET = 'web-ui-test-secret-that-is-long-enough-for-hs256'
const ARTIFACTS = path.resolve('test-artifacts')
let built: Promise<void> | undefined
const bundle = () => (built ??= buildWeb())

async function launch(userDataDir: string): Promise<BrowserContext> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`)
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
    viewport: {width: 1100, height: 1100},
  })
}

/** A node with its own media consumers (the default registry) and fast media settings: ultrafast x264, one 360p rung, the system's ffmpeg. */
const startWebNode = (overrides: Parameters<typeof loadConfig>[1] = {}) =>
  startTestNode('embedded', {searchPath: process.env.PATH, x264Preset: 'ultrafast', renditions: [{name: '360p', height: 360, videoBitrate: '600k', audioBitrate: '64k'}], thumbnailCount: 2, ...overrides}, {})

/** Every tus request the page sends, as the server saw it. */
function recordTus(page: Page) {
  const seen: {method: string; offset: number | null; auth: string | undefined}[] = []
  page.on('request', (req) => {
    if (!new URL(req.url()).pathname.startsWith('/files/')) return
    const headers = req.headers()
    seen.push({method: req.method(), offset: headers['upload-offset'] === undefined ? null : Number(headers['upload-offset']), auth: headers.authorization})
  })
  return seen
}

/** Slows each PATCH down so there is time to pause and reload between chunks. */
async function slowPatches(context: BrowserContext, ms: number) {
  await context.route('**/files/**', async (route) => {
    if (route.request().method() === 'PATCH') await new Promise((r) => setTimeout(r, ms))
    await route.continue().catch(() => {})
  })
}

async function serverOffset(base: string, id: string, headers: Record<string, string> = {}): Promise<{offset: number; size: number; status: string}> {
  return (await (await fetch(`${base}/api/uploads/${id}`, {headers})).json()) as {offset: number; size: number; status: string}
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe('the upload page in headless Chromium', () => {
  let dir: string
  let video: string
  let node: TestNode
  let context: BrowserContext

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'web-ui-'))
    video = path.join(dir, 'test-pattern.mp4')
    await Promise.all([
      bundle(),
      // 4 s of a moving test pattern with a tone, about 3 MB: a dozen 256 KiB chunks.
      exec(tools.ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440', '-t', '4', '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '5M', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '96k', video]),
    ])
    node = await startWebNode()
    await mkdir(path.join(dir, 'profile'))
    context = await launch(path.join(dir, 'profile'))
    await context.addInitScript((chunk) => localStorage.setItem('ingest.chunkSize', String(chunk)), CHUNK)
  })
  after(async () => {
    await context?.close()
    await node?.stop()
    await rm(dir, {recursive: true, force: true, maxRetries: 5})
  })

  it('serves the page and its bundle from the node itself, with a CSP and the server limits inlined', async () => {
    const res = await fetch(`${node.url}/`)
    assert.equal(res.status, 200)
    assert.match(String(res.headers.get('content-security-policy')), /default-src 'self'/)
    const html = await res.text()
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from another origin')
    const settings = JSON.parse(/<script type="application\/json" id="ingest-config">(.*?)<\/script>/.exec(html)![1]!) as {maxFileSize: number; endpoint: string}
    assert.equal(settings.maxFileSize, loadConfig({}, {}).maxUploadSize)
    assert.equal(settings.endpoint, '/files/')
    for (const file of ['app.js', 'app.css']) assert.equal((await fetch(`${node.url}/web/${file}`)).status, 200, file)
    assert.equal((await fetch(`${node.url}/web/../package.json`)).status, 404)
  })

  it('uploads a video with pause, resume and a reload mid-upload, follows it to ready and plays it', async () => {
    const size = (await stat(video)).size
    await slowPatches(context, 250)
    const page = await context.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    const tus = recordTus(page)
    await page.goto(`${node.url}/`)
    await page.locator('.uppy-Dashboard-input').first().setInputFiles(video)

    // The POST's Location names the upload.
    const created = await page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/files/')
    const id = new URL(String(await created.headerValue('location')), node.url).pathname.split('/').pop()!
    await until('two chunks on the server', async () => (await serverOffset(node.url, id)).offset >= 2 * CHUNK)

    await page.locator('[data-cy="togglePauseResume"]').click()
    await page.locator('[data-cy="togglePauseResume"][title="Resume"]').waitFor()
    const pausedAt = (await serverOffset(node.url, id)).offset
    const patchesWhilePaused = tus.filter((r) => r.method === 'PATCH').length
    await new Promise((r) => setTimeout(r, 1200))
    assert.equal((await serverOffset(node.url, id)).offset, pausedAt, 'nothing arrives while paused')
    assert.equal(tus.filter((r) => r.method === 'PATCH').length, patchesWhilePaused, 'no PATCH while paused')
    assert.ok(pausedAt < size)

    await page.locator('[data-cy="togglePauseResume"][title="Resume"]').click()
    await until('half the file after resuming', async () => (await serverOffset(node.url, id)).offset >= size / 2)

    // Reload mid-upload: GoldenRetriever restores the file from IndexedDB, tus resumes the same upload URL.
    const beforeReload = (await serverOffset(node.url, id)).offset
    assert.ok(beforeReload < size, 'still uploading when the page reloads')
    await page.reload()
    tus.length = 0
    const card = page.locator(`.card[data-upload-id="${id}"]`)
    await card.waitFor({timeout: 30_000})
    assert.equal(tus.filter((r) => r.method === 'POST').length, 0, 'no new upload after the reload')
    const firstPatch = tus.find((r) => r.method === 'PATCH')
    assert.ok(firstPatch && firstPatch.offset! >= beforeReload, `resumed at ${firstPatch?.offset}, the server had ${beforeReload}`)
    assert.ok(tus.some((r) => r.method === 'HEAD'), 'asked the server for its offset')
    const row = await serverOffset(node.url, id)
    assert.equal(row.offset, size)

    // Processing, live, then the player.
    await page.locator(`.card[data-upload-id="${id}"][data-status="ready"]`).waitFor({timeout: 90_000})
    const player = card.locator('.player')
    await player.locator('video').waitFor()
    assert.equal(await player.getAttribute('data-source'), 'hls')
    // The snapshot job may finish after the video is playable: the poster joins when it does.
    const poster = await until('the poster', async () => (await player.locator('video').getAttribute('poster')) ?? undefined)
    assert.match(poster, new RegExp(`/media/${id}/poster\\.jpg$`))
    await until('storyboard cues', async () => Number(await player.locator('.seekbar').getAttribute('data-cues')) > 0)

    // The poster and a storyboard tile under the pointer, for the screenshot.
    await page.evaluate(async (src) => {
      const image = new Image()
      image.src = src
      await image.decode()
    }, poster)
    const bar = await player.locator('.seekbar').boundingBox()
    // A pointer moving over the bar, as a person's does (one event may land before the cues do).
    await until('a storyboard preview under the pointer', async () => {
      await page.mouse.move(bar!.x + bar!.width * 0.6 + Math.random() * 4, bar!.y + bar!.height / 2)
      return (await player.locator('.seekbar-preview:not([hidden])').count()) > 0 || undefined
    })
    assert.match(String(await player.locator('.seekbar-preview').getAttribute('style')), /sprite\.jpg/)
    await mkdir(ARTIFACTS, {recursive: true})
    await page.screenshot({path: path.join(ARTIFACTS, 'web-ui.png'), fullPage: true})
    await player.locator('video').click()
    await page.waitForFunction(() => {
      const v = document.querySelector<HTMLVideoElement>('.player video')
      if (v && v.paused && v.currentTime === 0) void v.play()
      return v !== null && v.currentTime > 0.5
    }, undefined, {timeout: 20_000})
    await page.locator('.player video').evaluate((v: HTMLVideoElement) => v.pause())
    assert.deepEqual(errors, [])

    // The list of my uploads.
    await page.goto(`${node.url}/uploads`)
    await page.locator(`#upload-list tr[data-upload-id="${id}"][data-status="ready"]`).waitFor()
    assert.equal(await page.locator(`#upload-list tr[data-upload-id="${id}"] a`).textContent(), 'test-pattern.mp4')
    await page.close()
  })
})

describe('the upload page with auth on', () => {
  let dir: string
  let node: TestNode
  let context: BrowserContext
  const sign = (sub: string) => new SignJWT({}).setProtectedHeader({alg: 'HS256'}).setSubject(sub).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET))

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'web-ui-auth-'))
    await bundle()
    node = await startWebNode({authJwtSecret: SECRET})
    await mkdir(path.join(dir, 'profile'))
    context = await launch(path.join(dir, 'profile'))
  })
  after(async () => {
    await context?.close()
    await node?.stop()
    await rm(dir, {recursive: true, force: true, maxRetries: 5})
  })

  it('takes a token, keeps it in localStorage and sends it as Bearer on tus requests and API calls', async () => {
    const page = await context.newPage()
    const tus = recordTus(page)
    await page.goto(`${node.url}/uploads`)
    await page.locator('#list-note', {hasText: 'bearer token is required'}).waitFor()

    const token = await sign('alice')
    await page.locator('#token-form input').fill(token)
    await page.locator('#token-form button').click()
    await page.locator('#list-note', {hasText: 'No uploads yet.'}).waitFor()
    assert.equal(await page.evaluate(() => localStorage.getItem('ingest.token')), token)

    await page.goto(`${node.url}/`)
    const file = path.join(dir, 'clip.mp4')
    await exec(tools.ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=10', '-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', file])
    await page.locator('.uppy-Dashboard-input').first().setInputFiles(file)
    const card = page.locator('.card[data-status]:not([data-status="uploading"])')
    await card.waitFor({timeout: 30_000})
    assert.ok(tus.length >= 2 && tus.every((r) => r.method === 'OPTIONS' || r.auth === `Bearer ${token}`), JSON.stringify(tus))
    const id = String(await card.getAttribute('data-upload-id'))
    const mine = await fetch(`${node.url}/api/uploads`, {headers: {Authorization: `Bearer ${token}`}}).then((r) => r.json() as Promise<{uploads: {id: string}[]}>)
    assert.deepEqual(mine.uploads.map((u) => u.id), [id])
    const theirs = await fetch(`${node.url}/api/uploads`, {headers: {Authorization: `Bearer ${await sign('bob')}`}}).then((r) => r.json() as Promise<{uploads: unknown[]}>)
    assert.deepEqual(theirs.uploads, [])
    // Let processing finish before the node stops (it writes under the data directory until then).
    await page.locator(`.card[data-upload-id="${id}"][data-status="ready"]`).waitFor({timeout: 60_000})
    await page.close()
  })
})

describe('the upload page with private playback (MEDIA_SIGNING_SECRET)', () => {
  let dir: string
  let node: TestNode
  let context: BrowserContext

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'web-ui-private-'))
    await bundle()
    node = await startWebNode({mediaSigningSecret: 'web-ui-media-signing-secret-long-enough-0123'})
    await mkdir(path.join(dir, 'profile'))
    context = await launch(path.join(dir, 'profile'))
  })
  after(async () => {
    await context?.close()
    await node?.stop()
    await rm(dir, {recursive: true, force: true, maxRetries: 5})
  })

  it('plays a private video with hls.js: every media request carries the token and is served', async () => {
    const page = await context.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    const media: {url: string; status: number}[] = []
    page.on('response', (res) => {
      if (new URL(res.url()).pathname.startsWith('/media/')) media.push({url: res.url(), status: res.status()})
    })
    await page.goto(`${node.url}/`)
    const file = path.join(dir, 'private.mp4')
    await exec(tools.ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440', '-t', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', file])
    await page.locator('.uppy-Dashboard-input').first().setInputFiles(file)
    const card = page.locator('.card[data-status="ready"]')
    await card.waitFor({timeout: 90_000})
    const id = String(await card.getAttribute('data-upload-id'))
    const player = card.locator('.player')
    await player.locator('video').waitFor()
    assert.equal(await player.getAttribute('data-source'), 'hls')
    await page.waitForFunction(() => {
      const v = document.querySelector<HTMLVideoElement>('.player video')
      if (v && v.paused && v.currentTime === 0) void v.play().catch(() => {})
      return v !== null && v.currentTime > 0.5
    }, undefined, {timeout: 30_000})
    assert.deepEqual(errors, [])
    const playlists = media.filter((m) => /\.m3u8(\?|$)/.test(m.url))
    const segments = media.filter((m) => /\.ts(\?|$)/.test(m.url))
    assert.ok(playlists.length >= 2 && segments.length >= 1, JSON.stringify(media))
    for (const m of media) {
      assert.match(m.url, /[?&]token=[\w-]+\.[\w-]+\.[\w-]+/, `${m.url} carries the token`)
      assert.ok(m.status === 200 || m.status === 206 || m.status === 304, `${m.url} answered ${m.status}`)
    }
    // The same URLs without their token are refused: the video really is private.
    const bare = new URL(playlists[0]!.url)
    bare.search = ''
    assert.equal((await fetch(bare)).status, 401)
    assert.ok(bare.pathname.startsWith(`/media/${id}/`))
    await page.close()
  })
})
