/**
 * Periodic housekeeping for this node's uploads: expire unfinished uploads that stopped making
 * progress (file removed, row kept as `expired`), and finish completions (and final-upload
 * assemblies) a crash interrupted.
 * Each node sweeps only the uploads whose bytes it holds.
 */
import type {Logger} from 'pino'
import {PeriodicTask} from '../lifecycle/periodic-task.js'
import type {UploadCompletion} from './completion.js'
import type {UploadConcatenation} from './concatenation.js'
import type {UploadStore} from './upload-store.js'

export class UploadSweeper {
  private readonly task: PeriodicTask<void>

  constructor(
    private readonly store: UploadStore,
    private readonly completion: UploadCompletion,
    private readonly concatenation: UploadConcatenation,
    private readonly log: Logger,
    intervalMs: number
  ) {
    this.task = new PeriodicTask(() => this.pass(), intervalMs)
  }

  start(): void {
    this.task.start()
  }

  /** One pass; concurrent calls share the pass in progress. */
  sweep(): Promise<void> {
    return this.task.runNow()
  }

  stop(): Promise<void> {
    return this.task.stop()
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
