/**
 * A pass run every `intervalMs`, never two at once: a call while one runs shares it. Used by
 * the housekeeping of a node (expiry sweep, replication catch-up, retention).
 */
export class PeriodicTask<T> {
  private timer?: NodeJS.Timeout
  private running?: Promise<T>

  constructor(
    private readonly pass: () => Promise<T>,
    private readonly intervalMs: number
  ) {}

  /** Starts the timer (an interval of 0 or less: never); it does not keep the process alive. */
  start(): void {
    if (this.intervalMs <= 0 || this.timer) return
    this.timer = setInterval(() => void this.runNow().catch(() => {}), this.intervalMs)
    this.timer.unref()
  }

  runNow(): Promise<T> {
    this.running ??= this.pass().finally(() => (this.running = undefined))
    return this.running
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.running?.catch(() => {})
  }
}
