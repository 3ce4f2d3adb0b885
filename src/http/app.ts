/**
 * The whole request pipeline, in order. The tus endpoint comes before anything that would read
 * a request body: upload bodies stream straight to the store.
 */
import cors from '@koa/cors'
import Koa from 'koa'
import type {Logger} from 'pino'
import type {Server as TusServer} from '@tus/server'
import type {DataSource} from 'typeorm'
import type {Config} from '../config/index.js'
import {JobRepository} from '../jobs/job-repository.js'
import type {Pipeline} from '../jobs/pipeline.js'
import {metricsRoute, requestLatency} from '../metrics/http.js'
import type {NodeMetrics} from '../metrics/node-metrics.js'
import {ArtifactRepository} from '../media/artifact-repository.js'
import {MediaTokens} from '../media/media-tokens.js'
import type {UploadConcatenation} from '../uploads/concatenation.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import type {UploadStore} from '../uploads/upload-store.js'
import type {CallerLimits} from '../uploads/caller-limits.js'
import type {UploadChanges} from '../uploads/upload-changes.js'
import {authenticate, type Authenticator} from './auth.js'
import {errorHandler} from './error-handler.js'
import {mediaAccess} from './media-access.js'
import {requestContext, type AppState} from './request-context-middleware.js'
import {refuseAmbiguousPaths} from './request-path.js'
import {DRAFT_EXPOSED_HEADERS} from './resumable-draft/interop.js'
import {resumableDraftEndpoint, type ResumableDraftDeps} from './resumable-draft/endpoint.js'
import {adminApi} from './routes/admin.js'
import {healthRoutes} from './routes/health.js'
import {mediaRoute} from './routes/media.js'
import type {ClusterParts} from '../cluster/index.js'
import {internalRoutes} from '../cluster/internal-routes.js'
import {mediaForwarding} from '../cluster/media-forwarding.js'
import {ownerForwarding} from '../cluster/owner-forwarding.js'
import {uploadEventRoutes} from './routes/upload-events.js'
import {uploadRoutes} from './routes/uploads.js'
import {webRoutes} from './routes/web.js'
import {allowedOrigins, TUS_EXPOSED_HEADERS, tusEndpoint} from './tus.js'

export interface AppDeps {
  config: Config
  log: Logger
  db: DataSource
  metrics: NodeMetrics
  uploads: UploadRepository
  tus: TusServer
  cluster: ClusterParts
  /** Aborted when the node starts shutting down (long-lived responses end). */
  closing?: AbortSignal
  store: UploadStore
  concatenation: UploadConcatenation
  authenticator: Authenticator | null
  /** The IETF resumable-upload draft endpoint's own dependencies (the same store, locker, completion as tus). */
  resumableDraft: ResumableDraftDeps
  storageDir: string
  /** Limits per caller: creations (tus, draft) and event streams. */
  limits: CallerLimits
  /** The node's one listener for upload changes, which feeds every event stream. */
  changes?: UploadChanges
  /** The node's job pipeline, once started (the admin API requeues through it). */
  pipeline: () => Pipeline | undefined
}

const OPERATOR_PATH = /^\/(admin|internal)(\/|$)/
const TUS_HEADERS = ['Tus-Resumable', 'Tus-Version', 'Tus-Extension', 'Tus-Max-Size', 'Upload-Offset', 'Upload-Length', 'Upload-Metadata', 'Upload-Defer-Length', 'Upload-Concat', 'Location']

export function createApp(deps: AppDeps): Koa<AppState> {
  const app = new Koa<AppState>()
  app.proxy = deps.config.trustProxy
  // The client address is the one the trusted proxy appended, not the leftmost a client can write
  // itself: it keys the limits per caller when auth is off.
  app.maxIpsCount = 1
  const health = healthRoutes(deps.db, deps.storageDir)
  const jobs = new JobRepository(deps.db)
  const mediaTokens = deps.config.mediaSigningSecret ? new MediaTokens(deps.config.mediaSigningSecret, deps.config.mediaUrlTtl) : undefined
  const uploads = uploadRoutes(deps.uploads, jobs, new ArtifactRepository(deps.db), mediaTokens)
  const uploadEvents = uploadEventRoutes(
    {db: deps.db, uploads: deps.uploads, jobs, changes: deps.changes, limits: deps.limits, log: deps.log, mediaTokens},
    {pollMs: deps.config.eventsPollInterval, heartbeatMs: deps.config.eventsHeartbeatInterval, closing: deps.closing}
  )
  const origins = allowedOrigins(deps.config)

  app.use(requestContext(deps.log))
  app.use(requestLatency(deps.metrics))
  const browserCors = cors({
    origin: (ctx) => (origins === undefined ? '*' : origins.includes(ctx.get('origin')) ? ctx.get('origin') : ''),
    allowMethods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    exposeHeaders: [...TUS_HEADERS, ...TUS_EXPOSED_HEADERS, ...DRAFT_EXPOSED_HEADERS],
    maxAge: 86400,
  })
  // Operators' and peers' endpoints are not for web pages: no CORS at all.
  app.use((ctx, next) => (OPERATOR_PATH.test(ctx.path) ? next() : browserCors(ctx, next)))
  app.use(errorHandler())
  app.use(refuseAmbiguousPaths())
  app.use(health.routes())
  app.use(adminApi({config: deps.config, log: deps.log, db: deps.db, pipeline: deps.pipeline}))
  app.use(metricsRoute({metrics: deps.metrics, db: deps.db, nodeId: deps.config.nodeId, token: deps.config.metricsToken}))
  app.use(internalRoutes({...deps.cluster, uploads: deps.uploads, store: deps.store, dataDir: deps.config.dataDir}))
  app.use(mediaAccess(mediaTokens, deps.cluster.cluster))
  app.use(mediaForwarding(deps.cluster.cluster, deps.cluster.replicas, deps.config.dataDir))
  app.use(mediaRoute({db: deps.db, dataDir: deps.config.dataDir}))
  app.use(webRoutes(deps.config).routes())
  app.use(authenticate(deps.authenticator))
  app.use(ownerForwarding(deps.cluster.cluster, deps.uploads))
  app.use(resumableDraftEndpoint(deps.resumableDraft))
  app.use(tusEndpoint({tus: deps.tus, config: deps.config, uploads: deps.uploads, store: deps.store, concatenation: deps.concatenation, limits: deps.limits}))
  app.use(uploadEvents.router.routes())
  app.use(uploads.routes()).use(uploads.allowedMethods())
  app.on('error', (error: Error) => deps.log.debug({err: error}, 'connection error'))
  return app
}
