/**
 * GET /api/uploads/<id>/events: server-sent events for one upload.
 *
 * - `status`: the upload as the status API shows it (with its jobs), sent on connect and on
 *   every change; `progress`: a running job's percent as it moves.
 * - The upload's events from the outbox (`upload.completed`, `artifact.created`,
 *   `job.<status>`), each with the outbox row id as its SSE id. The outbox is an ordered,
 *   durable log, so an EventSource that reconnects with Last-Event-ID is sent every event after
 *   that id first: it misses nothing.
 * - A comment every heartbeat interval keeps proxies from closing an idle stream. The stream
 *   stays open until the client closes it (a finished upload may still gain renditions).
 *
 * The stream follows the database by polling (a few small indexed queries per tick), so it
 * works the same on every node, whichever node or worker made the change.
 */
import {PassThrough} from 'node:stream'
import Router from '@koa/router'
import type {DataSource} from 'typeorm'
import {NotFound} from '../../errors.js'
import type {JobRepository} from '../../jobs/job-repository.js'
import type {UploadRepository} from '../../uploads/upload-repository.js'
import type {AppState} from '../request-context.js'
import {jobView, uploadView} from './uploads.js'

export interface UploadEventsOptions {
  pollMs: number
  heartbeatMs: number
  /** Aborted when the node shuts down: open streams end (clients reconnect to another node). */
  closing?: AbortSignal
}

export function uploadEventRoutes(deps: {db: DataSource; uploads: UploadRepository; jobs: JobRepository}, options: UploadEventsOptions): Router<AppState> {
  const router = new Router<AppState>({prefix: '/api/uploads'})

  router.get('/:id/events', async (ctx) => {
    const id = ctx.params.id!
    const first = await deps.uploads.findById(id)
    if (!first || first.owner !== ctx.state.context.subject) throw new NotFound(`upload ${id.slice(0, 128)} not found`)
    const lastEventId = /^\d{1,18}$/.test(ctx.get('last-event-id')) ? Number(ctx.get('last-event-id')) : 0

    const stream = new PassThrough()
    ctx.req.socket.setTimeout(0)
    ctx.req.socket.setNoDelay(true)
    ctx.set({'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'keep-alive'})
    ctx.status = 200
    ctx.body = stream

    let cursor = lastEventId
    let lastStatus = ''
    const lastProgress = new Map<string, number>()
    let closed = false
    const send = (event: string, data: unknown, id = cursor) => stream.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
    stream.write(`retry: 2000\n\n`)

    const tick = async () => {
      const outbox = (await deps.db.query(`SELECT id, topic, payload FROM outbox WHERE upload_id = $1 AND id > $2 ORDER BY id LIMIT 500`, [id, cursor])) as Array<{id: string; topic: string; payload: unknown}>
      for (const row of outbox) {
        cursor = Number(row.id)
        send(row.topic, row.payload)
      }
      const row = await deps.uploads.findById(id)
      if (!row) return false
      const jobs = (await deps.jobs.forUpload(id)).map(jobView)
      const status = JSON.stringify([row.status, row.failureReason, jobs.map((j) => [j.kind, j.status])])
      if (status !== lastStatus) {
        lastStatus = status
        send('status', {...uploadView(row), jobs})
      }
      for (const job of jobs) {
        if (job.status === 'running' && lastProgress.get(job.kind) !== job.progress) {
          lastProgress.set(job.kind, job.progress)
          send('progress', {kind: job.kind, progress: job.progress})
        }
      }
      return true
    }

    const heartbeat = setInterval(() => stream.write(`: heartbeat\n\n`), options.heartbeatMs)
    const stop = () => {
      closed = true
      clearInterval(heartbeat)
      stream.end()
    }
    ctx.req.on('close', stop)
    options.closing?.addEventListener('abort', stop, {once: true})

    void (async () => {
      try {
        while (!closed && (await tick())) await new Promise((r) => setTimeout(r, options.pollMs))
      } catch (error) {
        ctx.state.context.log.warn({err: error}, 'upload event stream stopped')
      } finally {
        stop()
      }
    })()
  })

  return router
}
