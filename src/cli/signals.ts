/** SIGTERM/SIGINT: stop gracefully and exit 0 (1 if stopping failed); a second signal exits at once. */
import type {Logger} from 'pino'

export function exitOnSignals(stop: () => Promise<void>, log: Logger): void {
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(130)
    log.info({signal}, 'signal received; shutting down')
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({err: error}, 'shutdown failed')
        process.exit(1)
      }
    )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}
