/** Server-sent events for one upload: status, progress, its outbox events, heartbeats, and Last-Event-ID. */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import {Outcome} from '../src/jobs/outcome.js'
import {JobRegistry} from '../src/jobs/registry.js'
import {createUpload, PATCH_HEADERS, request} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

interface SseEvent {
  id?: string
  event: string
  data: unknown
}

/** Reads an event stream until `until` says stop (or the time runs out); comments counted apart. */
async function readEvents(url: string, until: (events: SseEvent[]) => boolean, headers: Record<string, string> = {}, timeoutMs = 15_000) {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), timeoutMs)
  const res = await fetch(url, {headers, signal: controller.signal})
  assert.equal(res.status, 200)
  assert.match(String(res.headers.get('content-type')), /^text\/event-stream/)
  const events: SseEvent[] = []
  let comments = 0
  let buffer = ''
  const decoder = new TextDecoder()
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, {stream: true})
      let end: number
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        if (block.startsWith(':')) comments++
        const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]))
        if (fields.event) events.push({id: fields.id, event: fields.event, data: JSON.parse(fields.data ?? 'null')})
      }
      if (until(events) && comments > 0) break
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
  return {events, comments}
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('upload events (server-sent)', () => {
  let node: TestNode
  before(async () => {
    const registry = new JobRegistry().register('transcode', async (_job, context) => {
      for (const percent of [25, 50, 75]) {
        await context.progress(percent)
        await pause(250)
      }
      return Outcome.succeeded()
    })
    node = await startTestNode('postgres', {eventsPollInterval: 50, eventsHeartbeatInterval: 200}, {registry})
  })
  after(() => node.stop())

  it('streams status, job progress and the upload\'s events, with heartbeats', async () => {
    const url = await createUpload(node.url, 5)
    const id = new URL(url).pathname.split('/').pop()!
    const done = (events: SseEvent[]) => events.some((e) => e.event === 'job.succeeded')
    const reading = readEvents(`${node.url}/api/uploads/${id}/events`, done)
    await pause(200)
    assert.equal((await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'hello'})).status, 204)
    const {events, comments} = await reading

    assert.ok(comments > 0, 'heartbeats')
    assert.equal(events[0]!.event, 'status')
    assert.equal((events[0]!.data as {status: string}).status, 'uploading')
    const statuses = events.filter((e) => e.event === 'status').map((e) => (e.data as {status: string}).status)
    assert.ok(statuses.includes('completed'), statuses.join())
    const names = events.map((e) => e.event)
    for (const name of ['upload.completed', 'job.running', 'job.succeeded']) assert.ok(names.includes(name), `${name} in ${names.join()}`)
    const progress = events.filter((e) => e.event === 'progress').map((e) => (e.data as {progress: number}).progress)
    assert.ok(progress.length >= 2, `progress ${progress}`)
    assert.deepEqual([...progress].sort((a, b) => a - b), progress, 'progress never goes back')
    assert.ok(progress.every((p) => p >= 0 && p <= 100))
  })

  it('sends a reconnecting client every event it missed, after its Last-Event-ID', async () => {
    const url = await createUpload(node.url, 3)
    const id = new URL(url).pathname.split('/').pop()!
    await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': '0'}, body: 'abc'})
    const logged = (events: SseEvent[]) => events.filter((e) => e.event !== 'status' && e.event !== 'progress')
    const all = logged((await readEvents(`${node.url}/api/uploads/${id}/events`, (ev) => ev.some((e) => e.event === 'job.succeeded'))).events)
    assert.ok(all.length >= 3)
    const first = all[0]!
    const again = await readEvents(`${node.url}/api/uploads/${id}/events`, (ev) => logged(ev).length >= all.length - 1, {'Last-Event-ID': first.id!}, 5000)
    assert.deepEqual(
      logged(again.events).map((e) => [e.id, e.event]),
      all.slice(1).map((e) => [e.id, e.event]),
      'exactly the events after the one it had'
    )
  })

  it('answers 404 for an unknown upload', async () => {
    assert.equal((await fetch(`${node.url}/api/uploads/nope/events`)).status, 404)
  })
})
