/** What every consumer in consumers/ is built from: the process's config, database and peers. */
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import type {Cluster} from '../src/cluster/cluster.js'
import type {Replicator} from '../src/cluster/replication.js'
import type {Config} from '../src/config/index.js'
import type {UploadRepository} from '../src/uploads/upload-repository.js'

export interface ConsumerDeps {
  config: Config
  db: DataSource
  log: Logger
  uploads: UploadRepository
  /** Present in processes that can reach the cluster's peers (fan-out, originals held elsewhere). */
  replicator?: Replicator
  cluster?: Cluster
}
