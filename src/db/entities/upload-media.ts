import {EntitySchema} from 'typeorm'

/**
 * The media columns of an upload row (added by the artifacts migration), as the media module
 * reads and writes them; the rest of the row belongs to the upload lifecycle (upload.ts).
 */
export interface UploadMediaRecord {
  id: string
  /** The probe result (media/probe.ts MediaProbe), as JSON. */
  mediaProbe: Record<string, unknown> | null
  durationSeconds: number | null
  /** Displayed (after rotation) size of the video; null for audio-only. */
  width: number | null
  height: number | null
}

export const UploadMediaEntity = new EntitySchema<UploadMediaRecord>({
  name: 'UploadMedia',
  tableName: 'uploads',
  columns: {
    id: {type: 'text', primary: true},
    mediaProbe: {name: 'media_probe', type: 'jsonb', nullable: true},
    durationSeconds: {name: 'duration_seconds', type: 'double precision', nullable: true},
    width: {type: 'int', nullable: true},
    height: {type: 'int', nullable: true},
  },
})
