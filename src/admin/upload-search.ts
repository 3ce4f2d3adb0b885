/** Uploads for an operator: any owner, filtered by status, owner and age (the user API shows only the caller's). */
import type {DataSource} from 'typeorm'
import {UploadEntity, type UploadRecord} from '../db/entities/upload.js'
import {isUploadId} from '../uploads/upload-repository.js'
import type {UploadStatus} from '../uploads/upload-status.js'

export interface UploadFilter {
  status?: UploadStatus
  owner?: string
  /** Created at or after this instant. */
  since?: Date
  limit: number
}

export class UploadSearch {
  constructor(private readonly db: DataSource) {}

  /** Newest first. */
  list(filter: UploadFilter): Promise<UploadRecord[]> {
    const query = this.db.getRepository(UploadEntity).createQueryBuilder('u').orderBy('u.created_at', 'DESC').addOrderBy('u.id', 'DESC').limit(filter.limit)
    if (filter.status) query.andWhere('u.status = :status', {status: filter.status})
    if (filter.owner) query.andWhere('u.owner = :owner', {owner: filter.owner})
    if (filter.since) query.andWhere('u.created_at >= :since', {since: filter.since})
    return query.getMany()
  }

  async find(id: string): Promise<UploadRecord | null> {
    if (!isUploadId(id)) return null
    return this.db.getRepository(UploadEntity).findOneBy({id})
  }
}
