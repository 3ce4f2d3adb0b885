/**
 * Plays a ready upload: HLS through hls.js (or the browser's own HLS), the MP4 when neither
 * works, the poster until it starts, and a seek bar that shows the storyboard tile of the time
 * under the pointer (the WebVTT file maps time ranges to #xywh regions of the sprite).
 */
import Hls from 'hls.js'
import type {ArtifactView} from './api.js'

export interface StoryboardCue {
  start: number
  end: number
  image: string
  x: number
  y: number
  width: number
  height: number
}

const seconds = (stamp: string) => stamp.split(':').reduce((total, part) => total * 60 + Number(part), 0)

/** Parses the storyboard WebVTT; image URLs are resolved against the VTT's own URL. */
export function parseStoryboard(vtt: string, base: string): StoryboardCue[] {
  const cues: StoryboardCue[] = []
  for (const block of vtt.split(/\r?\n\r?\n/)) {
    const timing = /([\d:.]+)\s+-->\s+([\d:.]+)/.exec(block)
    const target = /^(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)\s*$/m.exec(block)
    if (!timing || !target) continue
    cues.push({
      start: seconds(timing[1]!),
      end: seconds(timing[2]!),
      image: new URL(target[1]!, base).toString(),
      x: Number(target[2]),
      y: Number(target[3]),
      width: Number(target[4]),
      height: Number(target[5]),
    })
  }
  return cues
}

const find = (artifacts: ArtifactView[], kind: string, suffix: string) => artifacts.find((a) => a.kind === kind && a.path.endsWith(suffix))?.url

export function createPlayer(artifacts: ArtifactView[]): HTMLElement {
  const root = document.createElement('div')
  root.className = 'player'
  const video = document.createElement('video')
  video.controls = true
  video.playsInline = true
  video.preload = 'metadata'
  root.append(video)

  const master = find(artifacts, 'hls', 'master.m3u8')
  const mp4 = find(artifacts, 'mp4', '.mp4')
  const useMp4 = () => {
    if (mp4 && video.src !== mp4) video.src = mp4
  }
  if (master && Hls.isSupported()) {
    const hls = new Hls({enableWorker: true})
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return
      hls.destroy()
      useMp4()
    })
    hls.loadSource(master)
    hls.attachMedia(video)
    root.dataset.source = 'hls'
  } else if (master && video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = master
    root.dataset.source = 'native-hls'
    video.addEventListener('error', useMp4, {once: true})
  } else {
    useMp4()
    root.dataset.source = 'mp4'
  }

  addStills(root, artifacts)
  return root
}

/**
 * Poster and storyboard come from the snapshot job, which may finish after the upload is ready
 * (playable): added when they appear.
 */
export function addStills(root: HTMLElement, artifacts: ArtifactView[]): void {
  const video = root.querySelector('video')!
  const poster = find(artifacts, 'poster', 'poster.jpg')
  if (poster && !video.poster) video.poster = poster
  const vtt = find(artifacts, 'storyboard', '.vtt')
  if (vtt && !root.querySelector('.seekbar')) root.append(storyboardSeekBar(video, vtt))
}

function storyboardSeekBar(video: HTMLVideoElement, vttUrl: string): HTMLElement {
  const bar = document.createElement('div')
  bar.className = 'seekbar'
  bar.title = 'Seek (hover for a preview)'
  const played = document.createElement('div')
  played.className = 'seekbar-played'
  const preview = document.createElement('div')
  preview.className = 'seekbar-preview'
  preview.hidden = true
  const label = document.createElement('span')
  preview.append(label)
  bar.append(played, preview)

  let cues: StoryboardCue[] = []
  fetch(vttUrl)
    .then((res) => (res.ok ? res.text() : ''))
    .then((text) => {
      cues = parseStoryboard(text, vttUrl)
      bar.dataset.cues = String(cues.length)
    })
    .catch(() => {})

  // Until the video's metadata has loaded, the storyboard's last cue says how long it is.
  const duration = () => video.duration || cues[cues.length - 1]?.end || 0
  const timeAt = (event: PointerEvent) => {
    const rect = bar.getBoundingClientRect()
    const fraction = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width))
    return {fraction, time: fraction * duration()}
  }
  bar.addEventListener('pointermove', (event) => {
    const {fraction, time} = timeAt(event)
    const cue = cues.find((c) => time >= c.start && time < c.end) ?? cues[cues.length - 1]
    if (!cue || !duration()) return
    preview.hidden = false
    preview.style.width = `${cue.width}px`
    preview.style.height = `${cue.height}px`
    preview.style.backgroundImage = `url("${cue.image}")`
    preview.style.backgroundPosition = `-${cue.x}px -${cue.y}px`
    preview.style.left = `clamp(0px, calc(${fraction * 100}% - ${cue.width / 2}px), calc(100% - ${cue.width}px))`
    label.textContent = formatTime(time)
  })
  bar.addEventListener('pointerleave', () => (preview.hidden = true))
  bar.addEventListener('click', (event) => {
    if (video.duration) video.currentTime = timeAt(event as PointerEvent).time
  })
  video.addEventListener('timeupdate', () => {
    played.style.width = video.duration ? `${(video.currentTime / video.duration) * 100}%` : '0'
  })
  return bar
}

function formatTime(time: number): string {
  const s = Math.floor(time)
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}
