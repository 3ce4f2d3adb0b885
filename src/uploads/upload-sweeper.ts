/**
 * Periodic housekeeping for this node's uploads: expire unfinished uploads that stopped making
 * progress (file removed, row kept as `expired`), and finish completions (and final-upload
 * assemblies) a crash interrupted.
 * Each node sweeps only the uploads whose bytes it holds.
 */
import type {Logger} from 'pino'
import type {UploadCompletion} from './completion.js'
import type {UploadConcatenation} from './concatenation.js'
import type {UploadStore} from './upload-store.js'

export class UploadSweeper {
  private timer?: NodeJS.Timeout
  private running?: Promise<void>

  constructor(
    private readonly store: UploadStore,
    private readonly completion: UploadCompletion,
    private readonly concatenation: UploadConcatenation,
    private readonly log: Logger,
    private readonly intervalMs: number
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return
    this.timer = setInterval(() => void this.sweep(), this.intervalMs)
    this.timer.unref()
  }

  /** One pass; concurrent calls share the pass in progress. */
  sweep(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = undefined))
    return this.running
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.running
  }

  private async pass(): Promise<void> {
    try {
      const expired = await this.store.deleteExpired()
      const recovered = await this.completion.recoverStranded()
      await this.concatenation.recoverStranded()
      if (expired || recovered) this.log.info({expired, recovered}, 'upload sweep')
    } catch (error) {
      this.log.warn({err: error}, 'upload sweep failed; will try again')
    }
  }
}
