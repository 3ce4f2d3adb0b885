/**
 * A worker process for the process-level pipeline tests: `ingest worker` as the CLI starts it
 * (startWorker + the signal handling), with a snapshot handler defined here. Settings come from
 * the environment like the real command; FIXTURE_MODE says how the handler behaves:
 *   hang-first  the first attempt never ends (the test kills the process), later ones succeed
 *   slow        every attempt takes FIXTURE_WORK_MS, then succeeds
 * Each attempt prints "started <uploadId> <attempt>"; each success appends a line to FIXTURE_LOG.
 */
import {appendFile} from 'node:fs/promises'
import {exitOnSignals} from '../../src/cli/signals.js'
import {startWorker} from '../../src/cli/worker.js'
import {loadConfig} from '../../src/config/index.js'
import {createLogger} from '../../src/logger.js'
import {Outcome} from '../../src/jobs/outcome.js'
import {JobRegistry} from '../../src/jobs/registry.js'

const mode = process.env.FIXTURE_MODE
const logFile = process.env.FIXTURE_LOG!
const workMs = Number(process.env.FIXTURE_WORK_MS ?? 1000)
const config = loadConfig()
const log = createLogger({level: config.logLevel, pretty: false})

const registry = new JobRegistry().register('snapshot', async (job, context) => {
  process.stdout.write(`started ${job.uploadId} ${context.attempt}\n`)
  if (mode === 'hang-first' && context.attempt === 1) await new Promise(() => {})
  if (mode === 'slow') await new Promise((resolve) => setTimeout(resolve, workMs))
  await appendFile(logFile, `${job.uploadId} ${context.attempt}\n`)
  return Outcome.succeeded()
})

const worker = await startWorker(config, log, {registry: () => registry, kinds: ['snapshot']})
process.stdout.write('ready\n')
exitOnSignals(() => worker.close(), log)
