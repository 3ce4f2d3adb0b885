/**
 * The media module's I/O with the database: the upload's media columns and status changes the
 * pipeline makes (processing, ready, failed), each announced in the same transaction
 * (transactional outbox). Artifact rows are the ArtifactRepository's (`artifacts`).
 */
import type {DataSource} from 'typeorm'
import {OutboxRepository} from '../events/outbox-repository.js'
import {UploadEntity, type UploadRecord} from '../db/entities/upload.js'
import {UploadMediaEntity} from '../db/entities/upload-media.js'
import {SCHEMA_VERSION} from '../events/event-schemas.js'
import {canTransition, UploadStatus} from '../uploads/upload-status.js'
import {ArtifactRepository} from './artifact-repository.js'
import type {MediaProbe} from './probe.js'

/** The states a move to `to` may start from, as the upload state machine allows. */
const from = (to: UploadStatus, wanted: UploadStatus[]) => wanted.filter((status) => canTransition(status, to))

export class MediaRepository {
  /** The upload's artifacts (their one owner). */
  readonly artifacts: ArtifactRepository

  constructor(private readonly db: DataSource) {
    this.artifacts = new ArtifactRepository(db)
  }

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
}
