/**
 * One upload node: database, store, HTTP server and housekeeping, started and stopped in order.
 * main.ts runs it for the command line; tests start it in-process.
 */
import {mkdir} from 'node:fs/promises'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import {consumerRegistry} from '../consumers/index.js'
import type {Config} from './config/index.js'
import {openDatabase} from './db/database.js'
import {createAuthenticator} from './http/auth.js'
import {createApp} from './http/app.js'
import {createTusServer} from './http/tus.js'
import {MemoryLocker} from '@tus/server'
import type {JobKind} from './jobs/job-kinds.js'
import {startPipeline, type Pipeline} from './jobs/pipeline.js'
import type {JobRegistry} from './jobs/registry.js'
import {UploadCompletion} from './uploads/completion.js'
import {UploadConcatenation} from './uploads/concatenation.js'
import {UploadRepository} from './uploads/upload-repository.js'
import {UploadStore} from './uploads/upload-store.js'
import {UploadSweeper} from './uploads/upload-sweeper.js'

export interface RunningNode {
  url: string
  db: DataSource
  uploads: UploadRepository
  store: UploadStore
  sweeper: UploadSweeper
  pipeline: Pipeline
  /** Stops accepting, lets in-flight requests end (up to shutdownTimeout), closes the database. */
  close(): Promise<void>
}

export interface NodeOptions {
  /** Job handlers (default: the ones consumers/ registers). */
  registry?: JobRegistry
  /** Kinds this node consumes (default: all with the in-process broker, none with RabbitMQ). */
  kinds?: readonly JobKind[]
}

export async function startNode(config: Config, log: Logger, options: NodeOptions = {}): Promise<RunningNode> {
  const storageDir = path.join(config.dataDir, 'uploads')
  await mkdir(storageDir, {recursive: true})
  const db = await openDatabase(config)
  const uploads = new UploadRepository(db)
  const store = new UploadStore(uploads, {directory: storageDir, nodeId: config.nodeId, expiryMs: config.uploadExpiry})
  const completion = new UploadCompletion(uploads, store, log, config.nodeId)
  const concatenation = new UploadConcatenation(uploads, store, completion, log, {nodeId: config.nodeId, maxSize: config.maxUploadSize})
  const locker = new MemoryLocker()
  const tus = createTusServer({config, locker, store, uploads, completion})
  const authenticator = createAuthenticator(config)
  if (!authenticator) log.warn('authentication is off (no AUTH_JWT_SECRET or AUTH_JWKS_URL): uploads are anonymous')

  const app = createApp({config, log, db, uploads, store, concatenation, tus, authenticator, storageDir, resumableDraft: {config, locker, store, uploads, completion}})
  const server = http.createServer(app.callback())
  // Uploads over slow networks: no request timeout, but drop connections that go silent.
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
    server.listen(config.port, config.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const {port} = server.address() as AddressInfo
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`

  const sweeper = new UploadSweeper(store, completion, concatenation, log, config.expirySweepInterval)
  await sweeper.sweep()
  sweeper.start()
  const registry = options.registry ?? consumerRegistry({config, db, log, uploads})
  const pipeline = await startPipeline({config, db, log, registry, relay: true, ...(options.kinds ? {kinds: options.kinds} : {})})
  log.info({url, nodeId: config.nodeId, dataDir: config.dataDir, database: config.databaseUrl ? 'postgresql' : 'embedded'}, 'upload node listening')

  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      log.info('shutting down: no new connections, waiting for requests in flight')
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
      // Cut requests still record how far they got: give their handlers a moment to finish.
      await new Promise((resolve) => setTimeout(resolve, 50))
      await pipeline.close(config.shutdownTimeout)
      await db.destroy()
      log.info('shut down')
    })())

  return {url, db, uploads, store, sweeper, pipeline, close}
}
