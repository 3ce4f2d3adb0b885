/**
 * node1's fan-out worker for bench/replication.ts, as a process of its own: started beside the
 * nodes on loopback, or inside node1's testbed host so that what it sends crosses node1's link.
 * Gets node1's settings as JSON in argv; for each {uploadId} message over IPC it runs one
 * Replicator.replicateUpload pass (what the fanout consumer runs) and answers with the pass's
 * report and the seconds it took.
 */
import {loadConfig} from '../../src/config/index.js'
import {createCluster} from '../../src/cluster/index.js'
import {openDatabase} from '../../src/db/database.js'
import {createLogger} from '../../src/logger.js'

export interface WorkerSettings {
  nodeUrl: string
  dataDir: string
  databaseUrl: string
  databaseSchema: string
  clusterSecret: string
}

export type WorkerAnswer = {uploadId: string; seconds: number; sent: number; failed: unknown[]} | {uploadId: string; error: string}

const options = JSON.parse(process.argv[2] ?? '{}') as WorkerSettings
const config = loadConfig({REPLICATION_CHAIN: process.env.BENCH_REPLICATION_CHAIN}, {nodeId: 'node1', nodeTtl: '60s', replicationReconcileInterval: 0, logLevel: 'warn', ...options})
const db = await openDatabase(config)
const {replicator} = createCluster(config, db, createLogger({level: 'warn', pretty: false}), {id: 'node1', url: options.nodeUrl})

process.on('message', (message: {uploadId: string}) => {
  const started = performance.now()
  replicator.replicateUpload(message.uploadId).then(
    (report) => process.send!({uploadId: message.uploadId, seconds: (performance.now() - started) / 1000, sent: report.sent, failed: report.failed} satisfies WorkerAnswer),
    (error: Error) => process.send!({uploadId: message.uploadId, error: error.message} satisfies WorkerAnswer)
  )
})
process.on('disconnect', () => void db.destroy().finally(() => process.exit(0)))
process.send!({ready: true})
