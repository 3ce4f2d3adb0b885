/**
 * Catch-up: every REPLICATION_RECONCILE_INTERVAL each node looks for artifacts it holds that
 * some live peer lacks (a node that joined late, came back, or missed a fan-out job) and sends
 * them. The fan-out job is the fast path; this is the guarantee.
 */
import type {Logger} from 'pino'
import {PeriodicTask} from '../lifecycle/periodic-task.js'
import type {Cluster} from './cluster.js'
import type {ReplicaRepository} from './replica-repository.js'
import type {Replicator} from './replication.js'

export class ReplicationReconciler {
  private readonly task: PeriodicTask<void>

  constructor(
    private readonly cluster: Cluster,
    private readonly replicas: ReplicaRepository,
    private readonly replicator: Replicator,
    private readonly log: Logger,
    private readonly options: {intervalMs: number; ttlMs: number}
  ) {
    this.task = new PeriodicTask(() => this.pass(), options.intervalMs)
  }

  start(): void {
    if (this.cluster.enabled) this.task.start()
  }

  reconcile(): Promise<void> {
    return this.task.runNow()
  }

  stop(): Promise<void> {
    return this.task.stop()
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
