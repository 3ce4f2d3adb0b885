/** Where each artifact's verified copies are (the node that made it holds the first). */
import type {DataSource} from 'typeorm'
import type {ArtifactRecord} from '../db/entities/artifact.js'
import {ArtifactRepository} from '../media/artifact-repository.js'

export class ReplicaRepository {
  /** The artifacts whose copies these are (their rows are the ArtifactRepository's). */
  readonly artifacts: ArtifactRepository

  constructor(private readonly db: DataSource) {
    this.artifacts = new ArtifactRepository(db)
  }

  async record(artifact: ArtifactRecord, nodeId: string): Promise<void> {
    await this.db.query(
      `INSERT INTO replicas (artifact_id, node_id, sha256, size, verified_at) VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (artifact_id, node_id) DO UPDATE SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size, verified_at = now()`,
      [artifact.id, nodeId, artifact.sha256, artifact.size]
    )
  }

  /** record() for many artifacts in one statement (a bundle's). */
  async recordMany(artifacts: ArtifactRecord[], nodeId: string): Promise<void> {
    await this.db.query(
      `INSERT INTO replicas (artifact_id, node_id, sha256, size, verified_at)
       SELECT artifact_id, $1, sha256, size, now() FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS t(artifact_id, sha256, size)
       ON CONFLICT (artifact_id, node_id) DO UPDATE SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size, verified_at = now()`,
      [nodeId, artifacts.map((a) => a.id), artifacts.map((a) => a.sha256), artifacts.map((a) => a.size)]
    )
  }

  /** Nodes holding a verified copy of the artifact as it is now: its maker, then its replicas. */
  async holders(artifact: ArtifactRecord): Promise<string[]> {
    const rows = (await this.db.query(`SELECT node_id FROM replicas WHERE artifact_id = $1 AND sha256 = $2 ORDER BY node_id`, [artifact.id, artifact.sha256])) as Array<{node_id: string}>
    return [artifact.nodeId, ...rows.map((r) => r.node_id).filter((n) => n !== artifact.nodeId)]
  }

  /** holders() for every artifact of an upload, in one query. */
  async holdersByArtifact(artifacts: ArtifactRecord[]): Promise<Map<number, string[]>> {
    const ids = artifacts.map((a) => a.id)
    const rows = ids.length
      ? ((await this.db.query(`SELECT artifact_id, node_id, sha256 FROM replicas WHERE artifact_id = ANY($1::bigint[]) ORDER BY node_id`, [ids])) as Array<{artifact_id: string; node_id: string; sha256: string}>)
      : []
    const byId = new Map(artifacts.map((a) => [a.id, [a.nodeId]]))
    const current = new Map(artifacts.map((a) => [a.id, a.sha256]))
    for (const row of rows) {
      const id = Number(row.artifact_id)
      if (row.sha256 === current.get(id) && !byId.get(id)!.includes(row.node_id)) byId.get(id)!.push(row.node_id)
    }
    return byId
  }

  /** Uploads with an artifact that this node holds and some live peer lacks. */
  async uploadsToReconcile(nodeId: string, ttlMs: number, limit: number): Promise<string[]> {
    const rows = (await this.db.query(
      `SELECT DISTINCT a.upload_id FROM artifacts a
         JOIN nodes n ON n.id <> a.node_id AND n.last_seen_at > now() - ($2 || ' milliseconds')::interval
        WHERE (a.node_id = $1 OR EXISTS (SELECT 1 FROM replicas h WHERE h.artifact_id = a.id AND h.node_id = $1 AND h.sha256 = a.sha256))
          AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.artifact_id = a.id AND r.node_id = n.id AND r.sha256 = a.sha256)
        LIMIT $3`,
      [nodeId, String(ttlMs), limit]
    )) as Array<{upload_id: string}>
    return rows.map((r) => r.upload_id)
  }
}
