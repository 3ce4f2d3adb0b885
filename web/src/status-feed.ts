/**
 * Follows one upload's processing: the server-sent events endpoint when the node has it
 * (read with fetch, so the bearer token travels in a header and never in a URL), else the
 * status API polled once a second. Either way the caller gets whole status views.
 */
import {authHeaders, getUpload, isSettled, type UploadView} from './api.js'

const POLL_MS = 1000

export interface StatusFeed {
  stop(): void
}

export function followUpload(id: string, onUpdate: (upload: UploadView) => void, onError: (error: Error) => void): StatusFeed {
  const controller = new AbortController()
  let stopped = false
  const stop = () => {
    stopped = true
    controller.abort()
  }

  // A fresh view (jobs, artifacts) after each event: events say something changed, the status API says what.
  let last: UploadView | undefined
  const refresh = async (): Promise<boolean> => {
    const upload = await getUpload(id)
    last = upload
    if (!stopped) onUpdate(upload)
    return isSettled(upload)
  }

  const poll = async () => {
    while (!stopped) {
      if (await refresh()) return stop()
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    }
  }

  const run = async () => {
    if (await refresh()) return stop()
    const streamed = await streamEvents(id, controller.signal, async (event, data) => {
      // Events queued behind the one that settled the upload change nothing any more.
      if (stopped) return
      // The upload's own status shows at once (a job event's `status` is the job's); the full view follows.
      if (event === 'status' && last && data && typeof data === 'object' && 'status' in data) onUpdate({...last, ...(data as Partial<UploadView>)})
      if (await refresh()) stop()
    }).catch(() => false)
    if (!streamed && !stopped) await poll()
  }

  run().catch((error: Error) => {
    if (!stopped) onError(error)
  })
  return {stop}
}

/**
 * Reads `GET /api/uploads/<id>/events` as text/event-stream until it ends or is aborted.
 * Resolves false when the node has no such endpoint (the caller then polls).
 */
async function streamEvents(id: string, signal: AbortSignal, onEvent: (event: string, data: unknown) => Promise<void>): Promise<boolean> {
  const res = await fetch(`/api/uploads/${encodeURIComponent(id)}/events`, {headers: {Accept: 'text/event-stream', ...authHeaders()}, signal, cache: 'no-store'})
  if (!res.ok || !res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    await res.body?.cancel().catch(() => {})
    return false
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const {value, done} = await reader.read()
    if (done) return true
    buffer += value
    let end: number
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '')
      const lines = block.split(/\r?\n/)
      const event = lines.find((line) => line.startsWith('event:'))?.slice(6).trim() ?? 'message'
      const data = lines
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n')
      if (!data) continue
      let parsed: unknown = data
      try {
        parsed = JSON.parse(data)
      } catch {}
      await onEvent(event, parsed)
    }
  }
}
