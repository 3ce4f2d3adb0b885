/**
 * The upload page, served by every node at / (src/http/routes/web.ts): an Uppy Dashboard
 * uploading with tus to /files/, resumable across reloads (GoldenRetriever), a card per
 * finished upload with its live processing state and then its player; /uploads lists the
 * caller's uploads and /watch/<id> shows one.
 */
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import './style.css'
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import GoldenRetriever from '@uppy/golden-retriever'
import Tus from '@uppy/tus'
import {authHeaders, listUploads, pageConfig, token, uploadIdOf, type PageConfig} from './api.js'
import {uploadCard} from './upload-card.js'

const RECENT_KEY = 'ingest.recent'

function tokenField(config: PageConfig) {
  const form = document.querySelector<HTMLFormElement>('#token-form')!
  const input = form.querySelector<HTMLInputElement>('input')!
  form.hidden = !config.authRequired && !token.get()
  input.value = token.get()
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    token.set(input.value)
    location.reload()
  })
}

function formatSize(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`
}

/** Ids of this browser's latest uploads, so their cards come back after a reload. */
const recent = {
  list: (): string[] => JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]') as string[],
  add(id: string) {
    localStorage.setItem(RECENT_KEY, JSON.stringify([id, ...recent.list().filter((x) => x !== id)].slice(0, 10)))
  },
}

function uploadPage(config: PageConfig) {
  const cards = document.querySelector<HTMLElement>('#cards')!
  const uppy = new Uppy({
    id: 'ingest',
    autoProceed: true,
    restrictions: {maxFileSize: config.maxFileSize, allowedFileTypes: config.allowedFileTypes},
  })
    .use(Dashboard, {
      inline: true,
      target: '#dashboard',
      width: '100%',
      height: 340,
      proudlyDisplayPoweredByUppy: false,
      note: `Video files up to ${formatSize(config.maxFileSize)}. Uploads resume after a lost connection or a reload.`,
    })
    .use(Tus, {
      endpoint: new URL(config.endpoint, location.href).toString(),
      ...(config.chunkSize > 0 ? {chunkSize: config.chunkSize} : {}),
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
      headers: () => authHeaders(),
      removeFingerprintOnSuccess: true,
      limit: 3,
    })
    .use(GoldenRetriever)

  // Files restored after a reload carry on by themselves, from the offset the server has.
  // (Ghost files, whose bytes the browser could not keep, wait for the user to pick them again.)
  uppy.on('restored', () => {
    const files = uppy.getFiles()
    if (uppy.getState().recoveredState && files.length > 0 && files.every((f) => !f.isGhost)) uppy.emit('restore-confirmed')
  })
  uppy.on('upload-success', (_file, response) => {
    if (!response.uploadURL) return
    const id = uploadIdOf(response.uploadURL)
    recent.add(id)
    cards.prepend(uploadCard(id))
  })
  for (const id of recent.list()) cards.append(uploadCard(id))
  Object.assign(window, {uppy})
}

async function listPage() {
  const table = document.querySelector<HTMLTableSectionElement>('#upload-list tbody')!
  const note = document.querySelector<HTMLElement>('#list-note')!
  try {
    const {uploads} = await listUploads()
    note.textContent = uploads.length === 0 ? 'No uploads yet.' : ''
    for (const u of uploads) {
      const row = table.insertRow()
      row.dataset.uploadId = u.id
      row.dataset.status = u.status
      const link = document.createElement('a')
      link.href = `/watch/${encodeURIComponent(u.id)}`
      link.textContent = u.filename ?? u.id
      row.insertCell().append(link)
      const state = document.createElement('span')
      state.className = 'state'
      state.dataset.status = u.status
      state.textContent = u.status
      row.insertCell().append(state)
      row.insertCell().textContent = u.size === null ? '—' : formatSize(u.size)
      row.insertCell().textContent = new Date(u.createdAt).toLocaleString()
    }
  } catch (error) {
    note.textContent = `Could not list uploads: ${(error as Error).message}`
  }
}

function watchPage(id: string) {
  document.querySelector<HTMLElement>('#cards')!.append(uploadCard(id))
}

const config = pageConfig()
tokenField(config)
const view = document.body.dataset.view
if (view === 'upload') uploadPage(config)
else if (view === 'list') void listPage()
else if (view === 'watch') watchPage(decodeURIComponent(location.pathname.split('/').pop() ?? ''))
