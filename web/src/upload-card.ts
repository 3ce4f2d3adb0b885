/**
 * One upload after its bytes arrived: its state and processing percent, live, then the player
 * once it is ready (or the reason it failed).
 */
import {processingPercent, type UploadView} from './api.js'
import {addStills, createPlayer} from './player.js'
import {followUpload} from './status-feed.js'

const STATE_TEXT: Record<string, string> = {
  uploading: 'Uploading',
  completed: 'Queued for processing',
  processing: 'Processing',
  ready: 'Ready',
  failed: 'Failed',
  expired: 'Expired',
  terminated: 'Removed',
}

export function uploadCard(id: string): HTMLElement {
  const card = document.createElement('article')
  card.className = 'card'
  card.dataset.uploadId = id
  card.innerHTML = `
    <header><h3 class="card-title"></h3><span class="state" data-status="">…</span></header>
    <div class="meter" role="progressbar" aria-valuemin="0" aria-valuemax="100"><div class="meter-fill"></div></div>
    <p class="detail"></p>
    <div class="card-media"></div>`
  const title = card.querySelector<HTMLElement>('.card-title')!
  const state = card.querySelector<HTMLElement>('.state')!
  const meter = card.querySelector<HTMLElement>('.meter')!
  const fill = card.querySelector<HTMLElement>('.meter-fill')!
  const detail = card.querySelector<HTMLElement>('.detail')!
  const media = card.querySelector<HTMLElement>('.card-media')!
  title.textContent = id

  let player: HTMLElement | undefined
  const render = (upload: UploadView) => {
    title.textContent = upload.filename ?? upload.id
    const percent = upload.status === 'uploading' && upload.size ? Math.floor((upload.offset / upload.size) * 100) : processingPercent(upload)
    state.dataset.status = upload.status
    state.textContent = STATE_TEXT[upload.status] ?? upload.status
    card.dataset.status = upload.status
    card.dataset.percent = String(percent)
    meter.setAttribute('aria-valuenow', String(percent))
    meter.hidden = upload.status === 'ready' || upload.status === 'failed'
    fill.style.width = `${percent}%`
    detail.textContent =
      upload.status === 'failed' ? (upload.failureReason ?? 'processing failed') : upload.status === 'ready' ? '' : `${STATE_TEXT[upload.status] ?? upload.status} ${percent}%`
    if (upload.status === 'ready' && upload.artifacts) {
      if (!player) media.replaceChildren((player = createPlayer(upload.artifacts)))
      else addStills(player, upload.artifacts)
    }
  }
  followUpload(id, render, (error) => {
    detail.textContent = `Could not follow this upload: ${error.message}`
    card.dataset.status = 'unknown'
  })
  return card
}
