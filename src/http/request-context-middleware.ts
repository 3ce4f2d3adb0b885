/**
 * First middleware: gives each request an id (kept from X-Request-Id when it is sane), a
 * logger carrying it, and the async context the upload store reads; logs one line per request.
 */
import {randomUUID} from 'node:crypto'
import type {Middleware} from 'koa'
import type {Logger} from 'pino'
import {runInRequestContext, type RequestContext} from '../request-context.js'

const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/
const UPLOAD_ID_IN_PATH = /^\/(?:files|api\/uploads|media)\/([A-Za-z0-9_-]{1,128})/

export interface AppState {
  context: RequestContext
  /** The verified ?token= of a private /media request; playlists are served carrying it (media-access.ts). */
  mediaToken?: string
}

export function requestContext(log: Logger): Middleware<AppState> {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id')
    const requestId = SANE_ID.test(incoming) ? incoming : randomUUID()
    const uploadId = UPLOAD_ID_IN_PATH.exec(ctx.path)?.[1]
    const context: RequestContext = {requestId, subject: null, clientIp: ctx.ip, log: log.child({requestId, ...(uploadId ? {uploadId} : {})})}
    ctx.state.context = context
    ctx.set('X-Request-Id', requestId)
    const started = process.hrtime.bigint()
    try {
      await runInRequestContext(context, next)
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status
      context.log.info({method: ctx.method, path: ctx.path, status, ms: Math.round(ms * 10) / 10}, 'request')
    }
  }
}
