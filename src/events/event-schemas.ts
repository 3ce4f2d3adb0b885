/**
 * The events an upload's life writes to the outbox, as their publishers (src/uploads,
 * src/media, src/jobs) and their readers (the relay, webhooks, other nodes) share them: one
 * schema per event, versioned. A change here is a change of the wire format: bump
 * schemaVersion. The job messages and job.<status> events are the pipeline's (jobs/messages.ts).
 */
import {z} from 'zod'

export const SCHEMA_VERSION = 1

export const uploadCompletedSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  type: z.literal('upload.completed'),
  uploadId: z.string().min(1),
  nodeId: z.string().min(1),
  owner: z.string().nullable(),
  filename: z.string().nullable(),
  filetype: z.string().nullable(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  md5: z.string().regex(/^[0-9a-f]{32}$/),
  completedAt: z.string().datetime(),
})
export type UploadCompleted = z.infer<typeof uploadCompletedSchema>

/** A file derived from an upload (a rendition, a snapshot) now exists on a node. */
export const artifactCreatedSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  type: z.literal('artifact.created'),
  uploadId: z.string().min(1),
  artifactId: z.string().min(1),
  nodeId: z.string().min(1),
  role: z.string().min(1),
  path: z.string().min(1),
  size: z.number().int().nonnegative(),
  createdAt: z.string().datetime(),
})
export type ArtifactCreated = z.infer<typeof artifactCreatedSchema>
