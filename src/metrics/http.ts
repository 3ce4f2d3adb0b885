/**
 * The HTTP side of metrics: a latency middleware and the /metrics route. Latency is measured on
 * the response's 'finish' (or 'close' when the client went away), not when koa's middleware
 * returns: the tus endpoint sets ctx.respond = false and writes the answer itself.
 */
import {timingSafeEqual} from 'node:crypto'
import type {Middleware} from 'koa'
import type {DataSource} from 'typeorm'
import type {AppState} from '../http/request-context-middleware.js'
import {readDatabaseGauges} from './database-gauges.js'
import type {NodeMetrics} from './node-metrics.js'

export const METRICS_PATH = '/metrics'

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS', 'PUT'])

/** A bounded label for the path: ids never become label values. */
export function endpointOf(path: string, headers: {get(name: string): string}): string {
  if (path === '/files' || path.startsWith('/files/')) return headers.get('upload-draft-interop-version') ? 'draft' : 'tus'
  if (path.startsWith('/api/')) return 'api'
  if (path.startsWith('/media/')) return 'media'
  if (path === '/healthz' || path === '/readyz' || path === METRICS_PATH) return 'ops'
  return 'other'
}

export function requestLatency(metrics: NodeMetrics): Middleware<AppState> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint()
    const endpoint = endpointOf(ctx.path, ctx)
    const {res} = ctx
    const record = () => {
      res.off('finish', record)
      res.off('close', record)
      // The tus method override (X-HTTP-Method-Override) rewrites req.method: label what was served.
      const method = METHODS.has(ctx.req.method ?? '') ? ctx.req.method! : 'other'
      const status = res.writableFinished ? String(res.statusCode) : 'aborted'
      metrics.requestDuration.observe({endpoint, method, status}, Number(process.hrtime.bigint() - started) / 1e9)
    }
    res.once('finish', record)
    res.once('close', record)
    await next()
  }
}

export interface MetricsRouteOptions {
  metrics: NodeMetrics
  db: DataSource
  nodeId: string
  /** When set, scrapers must send `Authorization: Bearer <token>`. */
  token: string | undefined
  /** Longest the database gauges may take before the scrape answers without them. */
  databaseTimeoutMs?: number
}

export function metricsRoute(options: MetricsRouteOptions): Middleware<AppState> {
  const expected = options.token ? Buffer.from(`Bearer ${options.token}`) : undefined
  return async (ctx, next) => {
    if (ctx.path !== METRICS_PATH) return next()
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405
      ctx.set('Allow', 'GET, HEAD')
      return
    }
    ctx.set('Cache-Control', 'no-store')
    if (expected) {
      const given = Buffer.from(ctx.get('authorization'))
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        ctx.status = 401
        ctx.set('WWW-Authenticate', 'Bearer realm="metrics"')
        ctx.type = 'text/plain'
        ctx.body = 'the metrics need a bearer token (METRICS_TOKEN)\n'
        return
      }
    }
    await readDatabaseGauges(options.metrics, options.db, options.nodeId, options.databaseTimeoutMs ?? 2000)
    const {contentType, body} = await options.metrics.text()
    ctx.type = contentType
    ctx.body = body
  }
}
