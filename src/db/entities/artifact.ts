import {EntitySchema} from 'typeorm'
import {bigintAsNumber} from '../columns.js'

export const ARTIFACT_KINDS = ['mp4', 'hls', 'poster', 'thumbnail', 'storyboard'] as const
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number]

/** A file derived from an upload (a rendition's playlist or segment, the MP4, a snapshot), on one node. */
export interface ArtifactRecord {
  id: number
  uploadId: string
  kind: ArtifactKind
  /** The rendition's name ('720p', 'audio'), or '' for artifacts that have none. */
  rendition: string
  /** Relative to the upload's media directory, forward slashes. */
  path: string
  size: number
  sha256: string
  /** xxHash3-128 of the bytes, which verifies copies on the wire (src/media/wire-hash.ts); null on rows made before it. */
  xxh128: string | null
  contentType: string
  nodeId: string
  createdAt: Date
  updatedAt: Date
}

export const ArtifactEntity = new EntitySchema<ArtifactRecord>({
  name: 'Artifact',
  tableName: 'artifacts',
  columns: {
    id: {type: 'bigint', primary: true, generated: 'increment', transformer: bigintAsNumber},
    uploadId: {name: 'upload_id', type: 'text'},
    kind: {type: 'text'},
    rendition: {type: 'text'},
    path: {type: 'text'},
    size: {type: 'bigint', transformer: bigintAsNumber},
    sha256: {type: 'text'},
    xxh128: {type: 'text', nullable: true},
    contentType: {name: 'content_type', type: 'text'},
    nodeId: {name: 'node_id', type: 'text'},
    createdAt: {name: 'created_at', type: 'timestamptz'},
    updatedAt: {name: 'updated_at', type: 'timestamptz'},
  },
})
