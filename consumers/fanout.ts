/**
 * fanout: on artifact.created, copy the upload's artifacts to the peers that lack them. A pass
 * that could not reach every peer is retried (with backoff); the periodic catch-up covers
 * whatever retries do not.
 */
import type {Replicator} from '../src/cluster/replication.js'
import {Outcome} from '../src/jobs/outcome.js'
import type {JobHandler} from '../src/jobs/registry.js'

export function fanoutHandler(replicator: Replicator): JobHandler<'fanout'> {
  return async (job, context) => {
    const report = await replicator.replicateUpload(job.uploadId, context.signal)
    if (report.peers === 0) return Outcome.skipped('no peer to copy to')
    if (report.failed.length > 0) {
      const first = report.failed[0]!
      return Outcome.retry(`${report.failed.length} copies failed, e.g. ${first.path} to ${first.node}: ${first.error}`)
    }
    return Outcome.succeeded(`${report.sent} copies sent, ${report.skipped} already in place`)
  }
}
