/**
 * `npm start`: one upload node on the embedded default (or PostgreSQL with DATABASE_URL).
 * SIGTERM/SIGINT stop it gracefully; a second signal exits at once.
 */
import {ConfigError, loadConfig} from './config/index.js'
import {createLogger} from './logger.js'
import {startNode} from './node.js'

async function main(): Promise<void> {
  let config
  try {
    config = loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`video-ingest: ${error.message}\n`)
      process.exit(2)
    }
    throw error
  }
  const log = createLogger({level: config.logLevel})
  const node = await startNode(config, log)
  let signals = 0
  const stop = (signal: string) => {
    if (++signals > 1) process.exit(130)
    log.info({signal}, 'signal received')
    node.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({err: error}, 'shutdown failed')
        process.exit(1)
      }
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

main().catch((error: unknown) => {
  process.stderr.write(`video-ingest: could not start: ${(error as Error).message}\n`)
  process.exit(1)
})
