/**
 * SIGTERM/SIGINT: stop gracefully and exit 0 (1 if stopping failed); a second signal exits at once.
 * Started by `ingest stack` (an IPC channel to the parent), the parent going away counts as SIGTERM.
 */
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
  if (process.channel) {
    process.channel.unref()
    const orphaned = () => void (signals === 0 && onSignal('SIGTERM'))
    if (process.connected) process.once('disconnect', orphaned)
    else orphaned() // the parent went away while this process was starting
  }
}
