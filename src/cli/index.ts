#!/usr/bin/env node
/**
 * The `ingest` command: `ingest serve` runs an upload node (HTTP, outbox relay, and with the
 * in-process broker all consumers too); `ingest worker --kinds transcode,snapshot` runs
 * consumers alone against RabbitMQ. Both read their settings from the environment (see
 * src/config) and stop gracefully on SIGTERM. Any failure ends in a non-zero exit code.
 */
import {Command, InvalidArgumentError} from 'commander'
import {consumerRegistry} from '../../consumers/index.js'
import {ConfigError, loadConfig, type Config} from '../config/index.js'
import {isJobKind, JOB_KINDS, type JobKind} from '../jobs/job-kinds.js'
import {createLogger} from '../logger.js'
import {startNode} from '../node.js'
import {UploadRepository} from '../uploads/upload-repository.js'
import {exitOnSignals} from './signals.js'
import {startWorker} from './worker.js'

function parseKinds(value: string): JobKind[] {
  const kinds = value.split(',').map((k) => k.trim()).filter(Boolean)
  const unknown = kinds.filter((k) => !isJobKind(k))
  if (kinds.length === 0 || unknown.length > 0) throw new InvalidArgumentError(`expected a comma-separated list of ${JOB_KINDS.join(', ')}`)
  return kinds as JobKind[]
}

function configOrExit(): Config {
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
  const config = configOrExit()
  const log = createLogger({level: config.logLevel})
  const node = await startNode(config, log, options.kinds ? {kinds: options.kinds} : {})
  exitOnSignals(() => node.close(), log)
}

async function worker(options: {kinds: JobKind[]}): Promise<void> {
  const config = configOrExit()
  const log = createLogger({level: config.logLevel})
  if (!config.amqpUrl) {
    process.stderr.write('ingest: worker needs AMQP_URL; without RabbitMQ, `ingest serve` (or npm start) runs the jobs itself\n')
    process.exit(2)
  }
  const running = await startWorker(config, log, {
    kinds: options.kinds,
    registry: (db) => consumerRegistry({config, db, log, uploads: new UploadRepository(db)}),
  })
  exitOnSignals(() => running.close(), log)
}

const program = new Command('ingest').description('video-ingest: resumable uploads and their processing')
program
  .command('serve')
  .description('run an upload node (HTTP API, tus endpoint, outbox relay)')
  .option('--kinds <kinds>', `also consume these kinds of jobs (${JOB_KINDS.join(',')})`, parseKinds)
  .action(serve)
program
  .command('worker')
  .description('consume jobs from RabbitMQ (needs AMQP_URL)')
  .requiredOption('--kinds <kinds>', `kinds of jobs to take (${JOB_KINDS.join(',')})`, parseKinds)
  .action(worker)

program.parseAsync().catch((error: unknown) => {
  process.stderr.write(`ingest: ${(error as Error).message}\n`)
  process.exit(1)
})
