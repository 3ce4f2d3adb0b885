#!/usr/bin/env node
/**
 * The `ingest` command: `ingest serve` runs an upload node (HTTP, outbox relay, and the fan-out
 * and webhook consumers; with the in-process broker all consumers); `ingest worker --kinds transcode,snapshot`
 * runs consumers alone against RabbitMQ; `ingest stack` runs both on one machine, as children of
 * one process that starts and stops them together. Both read their settings from the environment (see
 * src/config) and stop gracefully on SIGTERM. Any failure ends in a non-zero exit code.
 *
 * The admin commands (uploads, jobs, requeue, dlq, nodes: cli/admin) are clients of a node's
 * admin API; the server modules are loaded only by serve and worker, so they start fast.
 */
import {Command, CommanderError, InvalidArgumentError} from 'commander'
import type {Config} from '../config/index.js'
import {isJobKind, JOB_KINDS, type JobKind} from '../jobs/job-kinds.js'
import {adminCommands, CliFailure, ExitCode, withUsageOnError} from './admin/index.js'
import {watchParent} from './signals.js'

// Started by `ingest stack`: its going away must be noticed even while this process starts.
watchParent()

function parseKinds(value: string): JobKind[] {
  const kinds = value.split(',').map((k) => k.trim()).filter(Boolean)
  const unknown = kinds.filter((k) => !isJobKind(k))
  if (kinds.length === 0 || unknown.length > 0) throw new InvalidArgumentError(`expected a comma-separated list of ${JOB_KINDS.join(', ')}`)
  return kinds as JobKind[]
}

async function configOrExit(): Promise<Config> {
  const {ConfigError, loadConfig} = await import('../config/index.js')
  try {
    return loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ingest: ${error.message}\n`)
      process.exit(2)
    }
    throw error
  }
}

async function serve(options: {kinds?: JobKind[]}): Promise<void> {
  const config = await configOrExit()
  const [{createLogger}, {startNode}, {exitOnSignals}] = await Promise.all([import('../logger.js'), import('../node.js'), import('./signals.js')])
  const log = createLogger({level: config.logLevel})
  const node = await startNode(config, log, options.kinds ? {kinds: options.kinds} : {})
  exitOnSignals(() => node.close(), log)
}

async function worker(options: {kinds: JobKind[]}): Promise<void> {
  const config = await configOrExit()
  const [{createLogger}, {consumerRegistry}, {UploadRepository}, {exitOnSignals}, {startWorker}, {createCluster}] = await Promise.all([
    import('../logger.js'),
    import('../../consumers/index.js'),
    import('../uploads/upload-repository.js'),
    import('./signals.js'),
    import('./worker.js'),
    import('../cluster/index.js'),
  ])
  const log = createLogger({level: config.logLevel})
  if (!config.amqpUrl) {
    process.stderr.write('ingest: worker needs AMQP_URL; without RabbitMQ, `ingest serve` (or npm start) runs the jobs itself\n')
    process.exit(2)
  }
  const running = await startWorker(config, log, {
    kinds: options.kinds,
    registry: (db) => {
      // A worker is no node (it serves nothing), but it reaches the nodes: to fetch an original
      // held elsewhere and to fan artifacts out.
      const {cluster, replicator} = createCluster(config, db, log, {id: config.nodeId, url: config.nodeUrl ?? ''})
      return consumerRegistry({config, db, log, uploads: new UploadRepository(db), cluster, replicator})
    },
  })
  exitOnSignals(() => running.close(), log)
}

async function stack(options: {workers: number}): Promise<void> {
  const config = await configOrExit()
  if (!config.amqpUrl) {
    process.stderr.write('ingest: stack needs AMQP_URL (and DATABASE_URL): without RabbitMQ, `ingest serve` (or npm start) runs the jobs itself\n')
    process.exit(2)
  }
  if (!config.databaseUrl) {
    process.stderr.write('ingest: stack needs DATABASE_URL: the embedded database cannot be shared between processes\n')
    process.exit(2)
  }
  const [{createLogger}, {runStack}] = await Promise.all([import('../logger.js'), import('./stack.js')])
  const log = createLogger({level: config.logLevel}).child({component: 'stack'})
  process.exit(await runStack({workers: options.workers, stopTimeoutMs: config.shutdownTimeout + 10_000}, log))
}

function parseCount(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('expected a whole number from 1 to 64')
  return n
}

const program = withUsageOnError(new Command('ingest').description('video-ingest: resumable uploads and their processing'))
// Commander's errors become usage errors (exit 2); --help exits 0. Set before the commands: they inherit it.
program.exitOverride()
program
  .command('serve')
  .description('run an upload node (HTTP API, tus endpoint, outbox relay)')
  .option('--kinds <kinds>', `kinds of jobs to consume (${JOB_KINDS.join(',')}; default with AMQP_URL: fanout,webhook, without: all)`, parseKinds)
  .action(serve)
program
  .command('worker')
  .description('consume jobs from RabbitMQ (needs AMQP_URL)')
  .requiredOption('--kinds <kinds>', `kinds of jobs to take (${JOB_KINDS.join(',')})`, parseKinds)
  .action(worker)

program
  .command('stack')
  .description('run an upload node and its media workers on this machine, started and stopped together (needs AMQP_URL and DATABASE_URL)')
  .option('--workers <n>', 'media worker processes (ingest worker --kinds transcode,snapshot)', parseCount, 1)
  .action(stack)

adminCommands(program)

program.parseAsync().catch((error: unknown) => {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage
    return
  }
  process.stderr.write(`ingest: ${(error as Error).message}\n`)
  if (error instanceof CliFailure) process.exitCode = error.exitCode
  else process.exit(1) // serve or worker failed to start: do not wait for what it left open
})
