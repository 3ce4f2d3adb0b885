/**
 * The message contract between publishers and consumers: one schema per event, versioned,
 * validated on receipt. A change here is a change of the wire format: bump schemaVersion.
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
