/**
 * SIGTERM/SIGINT: stop gracefully and exit 0 (1 if stopping failed); a second signal exits at once.
 * Started by `ingest stack` (an IPC channel to the parent), the parent going away counts as SIGTERM,
 * also when it went away while this process was still starting (watchParent, called first thing).
 */
import type {Logger} from 'pino'

const parent = {watched: false, gone: false, onGone: undefined as (() => void) | undefined}

/**
 * Call at start, before anything slow: notes the parent's going away from the first moment (the
 * channel is gone afterwards, so a process that looked only once started would never know).
 */
export function watchParent(): void {
  // process.send exists in a process started with an IPC channel, even once that has closed.
  if (typeof process.send !== 'function' || parent.watched) return
  parent.watched = true
  if (!process.connected) {
    parent.gone = true // it went away before this process could listen
    return
  }
  process.channel?.unref()
  process.once('disconnect', () => {
    parent.gone = true
    parent.onGone?.()
  })
}

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
  watchParent()
  if (!parent.watched) return
  const orphaned = () => void (signals === 0 && onSignal('SIGTERM'))
  if (parent.gone) orphaned() // the parent went away while this process was starting
  else parent.onGone = orphaned
}
