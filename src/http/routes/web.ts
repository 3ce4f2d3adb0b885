/**
 * The upload page, served by every node: `/` (upload), `/uploads` (the caller's uploads),
 * `/watch/<id>` (one upload), and the bundle under `/web/` that `npm run build` writes to
 * web/dist (web/build.mjs; nothing comes from a CDN). The page is public; it sends the token
 * the user enters with each tus request and API call, which are the ones that check it.
 */
import {createReadStream, existsSync} from 'node:fs'
import {stat} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import Router from '@koa/router'
import type {Config} from '../../config/index.js'
import {AppError, NotFound} from '../../errors.js'
import type {AppState} from '../request-context-middleware.js'

/** What the page offers to pick; the media probe is what decides whether a file is a video. */
export const PAGE_FILE_TYPES = ['video/*', '.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mts', '.m2ts', '.3gp']
/** Bounded PATCH bodies pass proxies with request size limits; large enough that round trips do not matter. */
export const PAGE_CHUNK_SIZE = 50 * 1024 * 1024

const BUNDLE_FILES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'app.js.map': 'application/json',
  'app.css.map': 'application/json',
  'app.js.LEGAL.txt': 'text/plain; charset=utf-8',
}

const CSP = [
  "default-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  "worker-src 'self' blob:",
  // Uppy (Preact) and the seek bar preview set style attributes.
  "style-src 'self' 'unsafe-inline'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ')

/** web/dist in the project root: the nearest folder up with a package.json (from src/ under tsx, dist/src/ compiled). */
function bundleDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir)
  return path.join(dir, 'web', 'dist')
}

type View = 'upload' | 'list' | 'watch'

function page(view: View, config: Config): string {
  const settings = {
    endpoint: '/files/',
    maxFileSize: config.maxUploadSize,
    allowedFileTypes: PAGE_FILE_TYPES,
    chunkSize: PAGE_CHUNK_SIZE,
    authRequired: Boolean(config.authJwtSecret || config.authJwksUrl),
  }
  // JSON inside <script>: "<" escaped so no value can close the element.
  const json = JSON.stringify(settings).replace(/</g, '\\u003c')
  const current = (v: View) => (v === view ? ' aria-current="page"' : '')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${view === 'list' ? 'My uploads' : 'Upload videos'} · video-ingest</title>
<link rel="stylesheet" href="/web/app.css">
<script type="application/json" id="ingest-config">${json}</script>
<script type="module" src="/web/app.js"></script>
</head>
<body data-view="${view}">
<header class="top">
  <h1>video-ingest</h1>
  <nav><a href="/"${current('upload')}>Upload</a><a href="/uploads"${current('list')}>My uploads</a></nav>
  <form id="token-form" hidden>
    <label for="token">Access token</label>
    <input id="token" name="token" type="password" autocomplete="off" placeholder="JWT (sent as Authorization: Bearer)">
    <button type="submit">Save</button>
  </form>
</header>
<main>
${
  view === 'upload'
    ? '<div id="dashboard"></div>\n<section id="cards" aria-label="Your uploads"></section>'
    : view === 'list'
      ? '<h2>My uploads</h2>\n<p id="list-note">Loading…</p>\n<table id="upload-list"><thead><tr><th>File</th><th>State</th><th>Size</th><th>Uploaded</th></tr></thead><tbody></tbody></table>'
      : '<section id="cards"></section>'
}
</main>
</body>
</html>
`
}

export function webRoutes(config: Config): Router<AppState> {
  const router = new Router<AppState>()
  const dir = bundleDir()

  const sendPage = (view: View): Router.Middleware<AppState> => (ctx) => {
    ctx.set('Cache-Control', 'no-cache')
    ctx.set('Content-Security-Policy', CSP)
    ctx.set('X-Content-Type-Options', 'nosniff')
    ctx.set('Referrer-Policy', 'same-origin')
    ctx.type = 'text/html; charset=utf-8'
    ctx.body = page(view, config)
  }
  router.get('/', sendPage('upload'))
  router.get('/uploads', sendPage('list'))
  router.get('/watch/:id', sendPage('watch'))

  router.get('/web/:file', async (ctx) => {
    const type = BUNDLE_FILES[ctx.params.file!]
    if (!type) throw new NotFound('no such file')
    const file = path.join(dir, ctx.params.file!)
    const info = await stat(file).catch(() => undefined)
    if (!info) throw new AppError(503, 'the web page is not built on this node: run `npm run build`')
    ctx.set('Cache-Control', 'no-cache')
    ctx.set('X-Content-Type-Options', 'nosniff')
    ctx.type = type
    ctx.lastModified = info.mtime
    ctx.status = 200
    if (ctx.fresh) {
      ctx.status = 304
      return
    }
    ctx.length = info.size
    ctx.body = createReadStream(file)
  })

  return router
}
