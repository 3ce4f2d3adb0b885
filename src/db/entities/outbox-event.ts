import {EntitySchema} from 'typeorm'
import {bigintAsNumber} from '../columns.js'

/**
 * An event waiting to be published. Written in the same transaction as the state change it
 * announces (transactional outbox), so an event exists if and only if the change committed.
 */
export interface OutboxEventRecord {
  id: number
  topic: string
  uploadId: string | null
  payload: Record<string, unknown>
  createdAt: Date
  publishedAt: Date | null
  attempts: number
  lastError: string | null
}

export const OutboxEventEntity = new EntitySchema<OutboxEventRecord>({
  name: 'OutboxEvent',
  tableName: 'outbox',
  columns: {
    id: {type: 'bigint', primary: true, generated: 'increment', transformer: bigintAsNumber},
    topic: {type: 'text'},
    uploadId: {name: 'upload_id', type: 'text', nullable: true},
    payload: {type: 'jsonb'},
    createdAt: {name: 'created_at', type: 'timestamptz'},
    publishedAt: {name: 'published_at', type: 'timestamptz', nullable: true},
    attempts: {type: 'int'},
    lastError: {name: 'last_error', type: 'text', nullable: true},
  },
})
