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
 * Streams do not poll: the node's one change listener (uploads/upload-changes.ts) wakes the
 * feed of an upload (upload-feed.ts) whichever node or worker made the change, and the feed
 * reads the database once for all the streams of that upload. A caller holds at most
 * SSE_MAX_PER_SUBJECT streams across the cluster (uploads/caller-limits.ts).
 */
import {PassThrough} from 'node:stream'
import Router from '@koa/router'
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import {NotFound} from '../../errors.js'
import type {JobRepository} from '../../jobs/job-repository.js'
import {artifactUrlPath} from '../../media/artifact-files.js'
import {withToken, type MediaTokens} from '../../media/media-tokens.js'
import {callerOf, type CallerLimits} from '../../uploads/caller-limits.js'
import type {UploadChanges} from '../../uploads/upload-changes.js'
import type {UploadRepository} from '../../uploads/upload-repository.js'
import type {AppState} from '../request-context-middleware.js'
import {StreamSubscriber, UploadEventFeeds} from './upload-feed.js'

export interface UploadEventsOptions {
  /** How often feeds look for changes while no change listener is connected. */
  pollMs: number
  heartbeatMs: number
  /** Aborted when the node shuts down: open streams end (clients reconnect to another node). */
  closing?: AbortSignal
}

export interface UploadEventsDeps {
  db: DataSource
  uploads: UploadRepository
  jobs: JobRepository
  /** The node's change listener (absent: the feeds poll). */
  changes?: UploadChanges
  limits?: CallerLimits
  log: Logger
  /** Set with MEDIA_SIGNING_SECRET: the artifact URLs in artifact.created events are signed. */
  mediaTokens?: MediaTokens
}

export function uploadEventRoutes(deps: UploadEventsDeps, options: UploadEventsOptions): {router: Router<AppState>; feeds: UploadEventFeeds} {
  const router = new Router<AppState>({prefix: '/api/uploads'})
  const feeds = new UploadEventFeeds(deps, deps.changes, {
    pollMs: options.pollMs,
    onError: (error) => deps.log.warn({err: error}, 'an upload event feed could not read the database; it retries on the next change'),
  })
  // Shutting down: every open stream ends (clients reconnect to another node).
  options.closing?.addEventListener('abort', () => feeds.close(), {once: true})

  router.get('/:id/events', async (ctx) => {
    const id = ctx.params.id!
    const first = await deps.uploads.findById(id)
    if (!first || first.owner !== ctx.state.context.subject) throw new NotFound(`upload ${id.slice(0, 128)} not found`)
    const lastEventId = /^\d{1,18}$/.test(ctx.get('last-event-id')) ? Number(ctx.get('last-event-id')) : 0
    const release = (await deps.limits?.openStream(callerOf(ctx.state.context))) ?? (async () => {})
    const log = ctx.state.context.log

    const stream = new PassThrough()
    ctx.req.socket.setTimeout(0)
    ctx.req.socket.setNoDelay(true)
    ctx.set({'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'keep-alive'})
    ctx.status = 200
    ctx.body = stream
    stream.write(`retry: 2000\n\n`)

    const heartbeat = setInterval(() => stream.write(`: heartbeat\n\n`), options.heartbeatMs)
    let unsubscribe = () => {}
    let stopped = false
    const stop = () => {
      if (stopped) return
      stopped = true
      clearInterval(heartbeat)
      unsubscribe()
      stream.end()
      release().catch((error: unknown) => log.warn({err: error}, 'could not record the end of an event stream'))
    }
    // Where each new artifact is served, as the status API says it (signed once for the stream: a
    // stream open longer than MEDIA_URL_TTL gives expired URLs; the status API signs afresh).
    const origin = `${ctx.protocol}://${ctx.host}`
    const token = await deps.mediaTokens?.sign(id)
    const artifactUrl = (path: string) => {
      const url = `${origin}/media/${artifactUrlPath({uploadId: id, path})}`
      return token ? withToken(url, token) : url
    }
    const subscriber = new StreamSubscriber(lastEventId, (event, data, eventId) => stream.write(`id: ${eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`), stop, artifactUrl)
    unsubscribe = feeds.subscribe(id, subscriber)
    ctx.req.on('close', stop)
  })

  return {router, feeds}
}
