import {EntitySchema} from 'typeorm'
import type {UploadStatus} from '../../uploads/upload-status.js'
import {bigintAsNumber} from '../columns.js'

/** One row per tus upload: what the client declared, how far it got, and what it hashes to. */
export interface UploadRecord {
  id: string
  owner: string | null
  /** Who created it, for the limits per caller: "sub:<JWT subject>" or "ip:<address>" (null: not counted). */
  caller: string | null
  filename: string | null
  filetype: string | null
  /** The tus Upload-Metadata pairs, values base64-encoded as on the wire (echoed on HEAD). */
  metadata: Record<string, string | null>
  /** Declared length; null while deferred (creation-defer-length). */
  size: number | null
  bytesReceived: number
  status: UploadStatus
  nodeId: string
  sha256: string | null
  md5: string | null
  failureReason: string | null
  expiresAt: Date | null
  createdAt: Date
  updatedAt: Date
  completedAt: Date | null
  /** tus concatenation: the Upload-Concat header as received ('partial' or 'final;…'), else null. */
  uploadConcat: string | null
  /** For a final upload: its partial uploads' ids, in order. */
  concatParts: string[] | null
  /**
   * Set while a checksum-verified append is in flight: bytes past this offset are not yet
   * verified, and are dropped if the process dies before the check.
   */
  unverifiedFrom: number | null
}

export const UploadEntity = new EntitySchema<UploadRecord>({
  name: 'Upload',
  tableName: 'uploads',
  columns: {
    id: {type: 'text', primary: true},
    owner: {type: 'text', nullable: true},
    caller: {type: 'text', nullable: true},
    filename: {type: 'text', nullable: true},
    filetype: {type: 'text', nullable: true},
    metadata: {type: 'jsonb'},
    size: {type: 'bigint', nullable: true, transformer: bigintAsNumber},
    bytesReceived: {name: 'bytes_received', type: 'bigint', transformer: bigintAsNumber},
    status: {type: 'text'},
    nodeId: {name: 'node_id', type: 'text'},
    sha256: {type: 'text', nullable: true},
    md5: {type: 'text', nullable: true},
    failureReason: {name: 'failure_reason', type: 'text', nullable: true},
    expiresAt: {name: 'expires_at', type: 'timestamptz', nullable: true},
    createdAt: {name: 'created_at', type: 'timestamptz'},
    updatedAt: {name: 'updated_at', type: 'timestamptz'},
    completedAt: {name: 'completed_at', type: 'timestamptz', nullable: true},
    uploadConcat: {name: 'upload_concat', type: 'text', nullable: true},
    concatParts: {name: 'concat_parts', type: 'text', array: true, nullable: true},
    unverifiedFrom: {name: 'unverified_from', type: 'bigint', nullable: true, transformer: bigintAsNumber},
  },
})
