/** Where peers send and probe artifact copies: `/internal/replicas/<upload>[/<path>]`. */
import type {ArtifactRecord} from '../db/entities/artifact.js'
import {artifactUrlPath} from '../media/artifact-files.js'

export const REPLICA_PREFIX = '/internal/replicas/'

export const replicaPath = (artifact: ArtifactRecord) => `${REPLICA_PREFIX}${artifactUrlPath(artifact)}`

/** Where a bundle of an upload's small artifacts is posted. */
export const bundlePath = (uploadId: string) => `${REPLICA_PREFIX}${encodeURIComponent(uploadId)}`
