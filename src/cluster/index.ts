/**
 * The cluster, assembled for one process (an HTTP node or a worker): registry, signing,
 * replication and its catch-up. src/cluster owns everything that crosses between nodes.
 */
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import type {Config} from '../config/index.js'
import {Cluster} from './cluster.js'
import {NodeRegistry} from './node-registry.js'
import {ReplicationReconciler} from './reconciler.js'
import {ReplicaRepository} from './replica-repository.js'
import {Replicator} from './replication.js'

export interface ClusterParts {
  cluster: Cluster
  replicas: ReplicaRepository
  replicator: Replicator
  reconciler: ReplicationReconciler
}

/** `self.url` may be filled in once the HTTP server knows its port, before `registry.start()`. */
export function createCluster(config: Config, db: DataSource, log: Logger, self: {id: string; url: string}): ClusterParts {
  const registry = new NodeRegistry(db, log, self, {heartbeatMs: config.nodeHeartbeatInterval, ttlMs: config.nodeTtl})
  const cluster = new Cluster(registry, config.clusterSecret, log, config.peerIdleTimeout)
  const replicas = new ReplicaRepository(db)
  const replicator = new Replicator(cluster, replicas, {dataDir: config.dataDir, factor: config.replicationFactor, chain: config.replicationChain}, log)
  const reconciler = new ReplicationReconciler(cluster, replicas, replicator, log, {intervalMs: config.replicationReconcileInterval, ttlMs: config.nodeTtl})
  return {cluster, replicas, replicator, reconciler}
}
