/**
 * The pipeline's message contract: job messages (one per upload and kind, validated on
 * receipt), job.<status> events, and which events start which jobs. Versioned with the upload
 * events (src/events): a change here is a change of the wire format, bump schemaVersion.
 */
import {z} from 'zod'
import {SCHEMA_VERSION} from '../events/event-schemas.js'
import {JOB_KINDS, type JobKind} from './job-kinds.js'
import {JOB_STATUSES, type JobStatus} from './job-status.js'

/** A job changed state (topic `job.<status>`). */
export const jobChangedSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  type: z.literal('job.changed'),
  jobId: z.number().int().positive(),
  uploadId: z.string().min(1),
  kind: z.enum(JOB_KINDS),
  status: z.enum(JOB_STATUSES as [JobStatus, ...JobStatus[]]),
  attempt: z.number().int().nonnegative(),
  /** Why the attempt failed; null unless it did. */
  error: z.string().nullable(),
  /** What a finished attempt did; absent in events written before it existed. */
  summary: z.string().nullable().optional(),
  at: z.string().datetime(),
})
export type JobChanged = z.infer<typeof jobChangedSchema>

/** Which jobs each event starts. Events not listed start none. */
export const JOB_TRIGGERS: Record<string, readonly JobKind[]> = {
  'upload.completed': ['transcode', 'snapshot'],
  'artifact.created': ['fanout'],
}

/**
 * The events delivered to WEBHOOK_URL (each starts a webhook job when webhooks are on). A dead
 * webhook job's own job.dead is not among them: it would only start the job that just died.
 */
export const WEBHOOK_EVENTS: readonly string[] = ['upload.completed', 'upload.ready', 'upload.failed', 'job.dead']

export function isWebhookEvent(topic: string, payload: Record<string, unknown>): boolean {
  return WEBHOOK_EVENTS.includes(topic) && !(topic === 'job.dead' && payload.kind === 'webhook')
}

const jobBase = {schemaVersion: z.literal(SCHEMA_VERSION), uploadId: z.string().min(1).max(128)}

/**
 * A unit of work, one message per (upload, kind). It names the upload only: handlers reload
 * what they need, so a message never carries stale state.
 */
export const jobMessageSchema = z.discriminatedUnion('kind', [
  z.object({...jobBase, kind: z.literal('transcode')}),
  z.object({...jobBase, kind: z.literal('snapshot')}),
  z.object({...jobBase, kind: z.literal('fanout')}),
  z.object({...jobBase, kind: z.literal('webhook')}),
])
export type JobMessage = z.infer<typeof jobMessageSchema>
export type JobMessageOf<K extends JobKind> = Extract<JobMessage, {kind: K}>

export function jobMessage<K extends JobKind>(kind: K, uploadId: string): JobMessageOf<K> {
  return {schemaVersion: SCHEMA_VERSION, kind, uploadId} as JobMessageOf<K>
}

export type ParsedJob = {ok: true; message: JobMessage} | {ok: false; reason: string}

/** Decodes a delivery taken from the queue of `kind`; says why when it cannot. Never throws. */
export function parseJobMessage(body: Buffer, kind: JobKind): ParsedJob {
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch {
    return {ok: false, reason: 'body is not JSON'}
  }
  const result = jobMessageSchema.safeParse(json)
  if (!result.success) {
    const issue = result.error.issues[0]!
    return {ok: false, reason: `invalid ${issue.path.join('.') || 'message'}: ${issue.message}`}
  }
  if (result.data.kind !== kind) return {ok: false, reason: `a ${result.data.kind} job on the ${kind} queue`}
  return {ok: true, message: result.data}
}
