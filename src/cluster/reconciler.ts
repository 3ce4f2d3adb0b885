/**
 * Catch-up: every REPLICATION_RECONCILE_INTERVAL each node looks for artifacts it holds that
 * some live peer lacks (a node that joined late, came back, or missed a fan-out job) and sends
 * them. The fan-out job is the fast path; this is the guarantee.
 */
import type {Logger} from 'pino'
import type {Cluster} from './cluster.js'
import type {ReplicaRepository} from './replica-repository.js'
import type {Replicator} from './replication.js'

export class ReplicationReconciler {
  private timer?: NodeJS.Timeout
  private running?: Promise<void>

  constructor(
    private readonly cluster: Cluster,
    private readonly replicas: ReplicaRepository,
    private readonly replicator: Replicator,
    private readonly log: Logger,
    private readonly options: {intervalMs: number; ttlMs: number}
  ) {}

  start(): void {
    if (!this.cluster.enabled || this.options.intervalMs <= 0) return
    this.timer = setInterval(() => void this.reconcile(), this.options.intervalMs)
    this.timer.unref()
  }

  reconcile(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = undefined))
    return this.running
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.running
  }

  private async pass(): Promise<void> {
    try {
      for (const uploadId of await this.replicas.uploadsToReconcile(this.cluster.self.id, this.options.ttlMs, 50)) {
        await this.replicator.replicateUpload(uploadId)
      }
    } catch (error) {
      this.log.warn({err: error}, 'replication catch-up failed; will try again')
    }
  }
}
