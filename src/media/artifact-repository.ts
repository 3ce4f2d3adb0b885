/**
 * Every query on the artifacts table: saving a job's files (each announced as artifact.created
 * in the same transaction) and finding them, for the media routes, replication and webhooks.
 */
import type {DataSource, EntityManager} from 'typeorm'
import {ArtifactEntity, type ArtifactKind, type ArtifactRecord} from '../db/entities/artifact.js'
import {SCHEMA_VERSION, type ArtifactCreated} from '../events/event-schemas.js'
import {OutboxRepository} from '../events/outbox-repository.js'
import type {ArtifactFile} from './artifact-files.js'

/** Files of one kind and rendition, saved together. */
export interface ArtifactGroup {
  kind: ArtifactKind
  rendition: string
  files: ArtifactFile[]
}

export class ArtifactRepository {
  constructor(private readonly db: DataSource) {}

  /**
   * Upserts one artifact row per file (unique per upload and path: a redelivered job, or the
   * master playlist rewritten as each rendition lands, updates the row in place with the new
   * bytes' sha256 and size) and announces each as artifact.created, every group in one
   * transaction of three statements however many files there are.
   */
  async save(uploadId: string, nodeId: string, groups: ArtifactGroup[]): Promise<ArtifactRecord[]> {
    const byPath = new Map(
      groups.flatMap(({kind, rendition, files}) =>
        files.map((f) => [f.path, {uploadId, kind, rendition, path: f.path, size: f.size, sha256: f.sha256, xxh128: f.xxh128, contentType: f.contentType, nodeId}] as const)
      )
    )
    const values = [...byPath.values()]
    if (values.length === 0) return []
    return this.db.transaction(async (tx) => {
      const now = new Date()
      await tx
        .createQueryBuilder()
        .insert()
        .into(ArtifactEntity)
        .values(values.map((v) => ({...v, createdAt: now, updatedAt: now})))
        .orUpdate(['kind', 'rendition', 'size', 'sha256', 'xxh128', 'content_type', 'node_id', 'updated_at'], ['upload_id', 'path'])
        .execute()
      const rows = await tx
        .getRepository(ArtifactEntity)
        .createQueryBuilder('a')
        .where('a.upload_id = :uploadId AND a.path IN (:...paths)', {uploadId, paths: [...byPath.keys()]})
        .getMany()
      await this.announce(tx, rows)
      return rows
    })
  }

  private async announce(tx: EntityManager, rows: ArtifactRecord[]): Promise<void> {
    await OutboxRepository.append(
      tx,
      rows.map((row) => {
        const payload: ArtifactCreated = {
          schemaVersion: SCHEMA_VERSION,
          type: 'artifact.created',
          uploadId: row.uploadId,
          artifactId: String(row.id),
          nodeId: row.nodeId,
          role: row.rendition ? `${row.kind}:${row.rendition}` : row.kind,
          path: row.path,
          size: row.size,
          createdAt: row.updatedAt.toISOString(),
        }
        return {topic: payload.type, uploadId: row.uploadId, payload}
      })
    )
  }

  list(uploadId: string): Promise<ArtifactRecord[]> {
    return this.db.getRepository(ArtifactEntity).find({where: {uploadId}, order: {kind: 'ASC', rendition: 'ASC', path: 'ASC'}})
  }

  find(uploadId: string, path: string): Promise<ArtifactRecord | null> {
    return this.db.getRepository(ArtifactEntity).findOneBy({uploadId, path})
  }
}
