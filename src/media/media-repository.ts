/**
 * The media module's I/O with the database: the upload's media columns and status changes the
 * pipeline makes (processing, ready, failed), and artifact rows with their artifact.created
 * events, written in one transaction (transactional outbox).
 */
import type {DataSource, EntityManager} from 'typeorm'
import {ArtifactEntity, type ArtifactKind, type ArtifactRecord} from '../db/entities/artifact.js'
import {OutboxRepository} from '../events/outbox-repository.js'
import {UploadEntity, type UploadRecord} from '../db/entities/upload.js'
import {UploadMediaEntity} from '../db/entities/upload-media.js'
import {SCHEMA_VERSION, type ArtifactCreated} from '../events/event-schemas.js'
import {canTransition, UploadStatus} from '../uploads/upload-status.js'
import type {ArtifactFile} from './artifact-files.js'
import type {MediaProbe} from './probe.js'

/** Files of one kind and rendition, saved together. */
export interface ArtifactGroup {
  kind: ArtifactKind
  rendition: string
  files: ArtifactFile[]
}

/** The states a move to `to` may start from, as the upload state machine allows. */
const from = (to: UploadStatus, wanted: UploadStatus[]) => wanted.filter((status) => canTransition(status, to))

export class MediaRepository {
  constructor(private readonly db: DataSource) {}

  findUpload(id: string): Promise<UploadRecord | null> {
    return this.db.getRepository(UploadEntity).findOneBy({id})
  }

  async recordProbe(uploadId: string, probe: MediaProbe): Promise<void> {
    await this.db.getRepository(UploadMediaEntity).update(
      {id: uploadId},
      {
        mediaProbe: probe as never,
        durationSeconds: probe.duration,
        width: probe.video?.displayWidth ?? null,
        height: probe.video?.displayHeight ?? null,
      }
    )
  }

  /** completed/failed -> processing; false when the upload is elsewhere (ready, gone). */
  markProcessing(uploadId: string): Promise<boolean> {
    return this.moveTo(uploadId, UploadStatus.Processing, from(UploadStatus.Processing, [UploadStatus.Completed, UploadStatus.Failed]), null)
  }

  /** The first rendition is playable; announced as upload.ready (webhooks carry it). */
  markReady(uploadId: string): Promise<boolean> {
    return this.moveTo(uploadId, UploadStatus.Ready, from(UploadStatus.Ready, [UploadStatus.Completed, UploadStatus.Processing]), null, 'upload.ready')
  }

  /** Announced as upload.failed, with the reason. */
  markFailed(uploadId: string, reason: string): Promise<boolean> {
    return this.moveTo(uploadId, UploadStatus.Failed, from(UploadStatus.Failed, [UploadStatus.Completed, UploadStatus.Processing]), reason, 'upload.failed')
  }

  private async moveTo(id: string, status: UploadStatus, fromStates: UploadStatus[], failureReason: string | null, announce?: 'upload.ready' | 'upload.failed'): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const result = await tx
        .createQueryBuilder()
        .update(UploadEntity)
        .set({status, failureReason, updatedAt: new Date()})
        .where('id = :id AND status IN (:...fromStates)', {id, fromStates})
        .execute()
      const moved = (result.affected ?? 0) > 0
      if (moved && announce) {
        const payload = {schemaVersion: SCHEMA_VERSION, type: announce, uploadId: id, ...(failureReason ? {reason: failureReason} : {}), at: new Date().toISOString()}
        await OutboxRepository.append(tx, [{topic: announce, uploadId: id, payload}])
      }
      return moved
    })
  }

  /**
   * Upserts one artifact row per file (unique per upload and path: a redelivered job, or the
   * master playlist rewritten as each rendition lands, updates the row in place with the new
   * bytes' sha256 and size) and announces each as artifact.created, every group in one
   * transaction of three statements however many files there are.
   */
  async saveArtifacts(uploadId: string, nodeId: string, groups: ArtifactGroup[]): Promise<ArtifactRecord[]> {
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

  listArtifacts(uploadId: string): Promise<ArtifactRecord[]> {
    return this.db.getRepository(ArtifactEntity).find({where: {uploadId}, order: {kind: 'ASC', rendition: 'ASC', path: 'ASC'}})
  }

  findArtifact(uploadId: string, path: string): Promise<ArtifactRecord | null> {
    return this.db.getRepository(ArtifactEntity).findOneBy({uploadId, path})
  }
}

