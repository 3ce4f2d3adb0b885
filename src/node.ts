/**
 * One upload node: database, store, HTTP server and housekeeping, started and stopped in order.
 * main.ts runs it for the command line; tests start it in-process.
 */
import {mkdir} from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import type {AddressInfo} from 'node:net'
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import {consumerRegistry} from '../consumers/index.js'
import type {Config} from './config/index.js'
import {openDatabase} from './db/database.js'
import {createAuthenticator} from './http/auth.js'
import {createApp} from './http/app.js'
import {createTusServer} from './http/tus.js'
import {createCluster, type ClusterParts} from './cluster/index.js'
import {openEarlyProbe} from './media/index.js'
import type {JobKind} from './jobs/job-kinds.js'
import {startPipeline, type Pipeline} from './jobs/pipeline.js'
import type {JobRegistry} from './jobs/registry.js'
import {UploadCompletion} from './uploads/completion.js'
import {UploadConcatenation} from './uploads/concatenation.js'
import {UploadRepository} from './uploads/upload-repository.js'
import {UploadStore} from './uploads/upload-store.js'
import {uploadsDirectory} from './uploads/upload-files.js'
import {UploadLocker} from './uploads/upload-locker.js'
import {UploadSweeper} from './uploads/upload-sweeper.js'
import {NodeMetrics} from './metrics/node-metrics.js'
import {ObservedUploadStore} from './metrics/observed-upload-store.js'
import {UploadRetention} from './uploads/retention.js'
import {checkWebhookTarget} from './webhooks/webhook-target.js'
import {UploadChanges} from './uploads/upload-changes.js'
import {CallerLimits, callerLimitSettings, inFlightQuota} from './uploads/caller-limits.js'
import {PeriodicTask} from './lifecycle/periodic-task.js'

export interface RunningNode {
  url: string
  db: DataSource
  uploads: UploadRepository
  store: UploadStore
  /** The per-upload lock every write takes. */
  locker: UploadLocker
  sweeper: UploadSweeper
  pipeline: Pipeline
  cluster: ClusterParts
  /** This node's metrics (its own registry); `metrics.replication` is the cluster's hook for replication lag. */
  metrics: NodeMetrics
  retention: UploadRetention
  /** Stops accepting, lets in-flight requests end (up to shutdownTimeout), closes the database. */
  close(): Promise<void>
}

/** Connections the kernel queues before the node accepts them (capped by net.core.somaxconn). */
const LISTEN_BACKLOG = 8192

export interface NodeOptions {
  /** Job handlers (default: the ones consumers/ registers). */
  registry?: JobRegistry
  /** Kinds this node consumes (default: all with the in-process broker, NODE_KINDS_WITH_BROKER with RabbitMQ). */
  kinds?: readonly JobKind[]
}

/**
 * With RabbitMQ an upload node consumes fan-out and webhooks, and workers the media kinds. Every deployment
 * has nodes; each is in the live set with its own data directory, so the sender reads the copy
 * its own workers wrote or streams one from a live node that holds it. Standalone (no
 * CLUSTER_SECRET) a fan-out has no peers and settles at once: its job never waits forever.
 */
export const NODE_KINDS_WITH_BROKER: readonly JobKind[] = ['fanout', 'webhook']

export async function startNode(config: Config, log: Logger, options: NodeOptions = {}): Promise<RunningNode> {
  // Every process with WEBHOOK_URL relays (and may deliver) webhooks: each refuses a target that is this machine.
  if (config.webhookUrl) await checkWebhookTarget(config.webhookUrl, config.webhookAllowPrivate)
  const storageDir = uploadsDirectory(config.dataDir)
  await mkdir(storageDir, {recursive: true})
  const db = await openDatabase(config)
  const limits = new CallerLimits(db, callerLimitSettings(config), {id: config.nodeId, ttlMs: config.nodeTtl})
  const uploads = new UploadRepository(db, inFlightQuota(limits.settings))
  const metrics = new NodeMetrics({nodeId: config.nodeId})
  const locker = new UploadLocker()
  const store: UploadStore = new ObservedUploadStore(
    uploads,
    {
      directory: storageDir,
      nodeId: config.nodeId,
      expiryMs: config.uploadExpiry,
      idleTimeoutMs: config.uploadIdleTimeout,
      maxSize: config.maxUploadSize,
      locker,
      // Media's early probe, injected: uploads know nothing of ffmpeg (test/import-graph.test.ts).
      inspectHead: openEarlyProbe(config, log),
      log,
    },
    metrics
  )
  const completion = new UploadCompletion(uploads, store, log, config.nodeId)
  store.onFullyReceived = (id, size) => completion.complete(id, size)
  completion.onCompleted(() => metrics.uploadsCompleted.inc())
  const shuttingDown = new AbortController()
  const self = {id: config.nodeId, url: config.nodeUrl ?? ''}
  const clusterParts = createCluster(config, db, log, self)
  const concatenation = new UploadConcatenation(uploads, store, completion, log, {
    nodeId: config.nodeId,
    maxSize: config.maxUploadSize,
    maxParts: config.maxConcatParts,
    openRemotePart: (part) => clusterParts.cluster.openUploadContent(part.nodeId, part.id),
  })
  const tus = createTusServer({config, locker, store, uploads, completion})
  const authenticator = createAuthenticator(config)
  if (!authenticator) log.warn('authentication is off (no AUTH_JWT_SECRET or AUTH_JWKS_URL): uploads are anonymous')

  const changes = new UploadChanges(db, config.databaseUrl, log)
  await changes.start()
  let startedPipeline: Pipeline | undefined
  const app = createApp({pipeline: () => startedPipeline, config, log, db, metrics, uploads, store, concatenation, tus, authenticator, storageDir, cluster: clusterParts, closing: shuttingDown.signal, limits, changes, resumableDraft: {config, locker, store, uploads, completion, limits}})
  const server = http.createServer(app.callback())
  // Uploads over slow networks: no request timeout; a body that goes silent is ended by the
  // store (UPLOAD_IDLE_TIMEOUT), which keeps what arrived.
  server.requestTimeout = 0
  server.headersTimeout = 60_000
  server.keepAliveTimeout = 65_000
  server.maxHeadersCount = 100

  const inFlight = new Set<Promise<void>>()
  server.on('request', (_req, res) => {
    const done = new Promise<void>((resolve) => res.once('close', resolve))
    inFlight.add(done)
    void done.then(() => inFlight.delete(done))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // A crowd of clients connecting while the node is busy must wait in the accept queue, not
    // be reset: Node's default backlog (511) overflowed with 1000 uploads starting at once.
    server.listen({port: config.port, host: config.host, backlog: LISTEN_BACKLOG}, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const {port} = server.address() as AddressInfo
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`
  self.url ||= host === '0.0.0.0' || host === '[::]' ? `http://${os.hostname()}:${port}` : url
  await clusterParts.cluster.registry.start()
  await limits.forgetOwnStreams()
  const limitsHousekeeping = new PeriodicTask(() => limits.prune().catch((error: unknown) => log.warn({err: error}, 'pruning the limits per caller failed')), 60_000)
  limitsHousekeeping.start()

  const sweeper = new UploadSweeper(store, completion, concatenation, log, config.expirySweepInterval)
  await sweeper.sweep()
  sweeper.start()
  const registry = options.registry ?? consumerRegistry({config, db, log, uploads, replicator: clusterParts.replicator, cluster: clusterParts.cluster})
  const kinds = options.kinds ?? (config.amqpUrl ? NODE_KINDS_WITH_BROKER : undefined)
  const pipeline = await startPipeline({config, db, log, registry, relay: true, ...(kinds ? {kinds} : {})})
  startedPipeline = pipeline
  pipeline.runner.onSettled((job) => metrics.jobSettled(job.kind, job.status, job.seconds))
  const retention = new UploadRetention(db, log.child({component: 'retention'}), {
    nodeId: config.nodeId,
    filePath: (id) => store.filePath(id),
    expiredGraceMs: config.expiredUploadGrace,
    originalRetentionMs: config.originalRetention,
    eventRetentionMs: config.eventRetention,
    intervalMs: config.retentionInterval,
  })
  retention.onReport((report) => {
    metrics.retentionRemoved.inc({what: 'upload_rows'}, report.deletedRows.length)
    metrics.retentionRemoved.inc({what: 'originals'}, report.removedOriginals.length)
    metrics.retentionRemoved.inc({what: 'events'}, report.prunedEvents)
  })
  retention.start()
  clusterParts.reconciler.start()
  log.info({url, nodeUrl: self.url, cluster: clusterParts.cluster.enabled, nodeId: config.nodeId, dataDir: config.dataDir, database: config.databaseUrl ? 'postgresql' : 'embedded'}, 'upload node listening')

  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      log.info('shutting down: no new connections, waiting for requests in flight')
      shuttingDown.abort()
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
      // Connections that finish their request go idle: close them as they do.
      const reaper = setInterval(() => server.closeIdleConnections(), 100)
      server.closeIdleConnections()
      const deadline = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), config.shutdownTimeout).unref())
      if ((await Promise.race([Promise.all(inFlight).then(() => 'done' as const), deadline])) === 'timeout') {
        log.warn({requests: inFlight.size}, 'shutdown timeout: closing the remaining connections')
      }
      clearInterval(reaper)
      server.closeAllConnections()
      await stopped
      await sweeper.stop()
      await limitsHousekeeping.stop()
      await changes.close()
      await clusterParts.reconciler.stop()
      await clusterParts.cluster.registry.stop()
      await retention.stop()
      // Cut requests still record how far they got: give their handlers a moment to finish.
      await new Promise((resolve) => setTimeout(resolve, 50))
      await pipeline.close(config.shutdownTimeout)
      await db.destroy()
      log.info('shut down')
    })())

  return {url, db, uploads, store, locker, sweeper, pipeline, metrics, retention, cluster: clusterParts, close}
}
