/**
 * The status API: GET /api/uploads/<id> and GET /api/uploads (the caller's uploads, newest
 * first, paged by an opaque cursor).
 */
import Router from '@koa/router'
import {z} from 'zod'
import type {ArtifactRecord} from '../../db/entities/artifact.js'
import type {UploadRecord} from '../../db/entities/upload.js'
import type {JobRecord} from '../../db/entities/job.js'
import {BadRequest, NotFound} from '../../errors.js'
import type {JobRepository, JobWithHistory} from '../../jobs/job-repository.js'
import {clientJobStatus} from '../../jobs/job-status.js'
import {artifactUrlPath} from '../../media/artifact-files.js'
import {withToken, type MediaTokens} from '../../media/media-tokens.js'
import type {UploadRepository} from '../../uploads/upload-repository.js'
import {UPLOAD_STATUSES} from '../../uploads/upload-status.js'
import type {AppState} from '../request-context-middleware.js'

/** What an upload id can look like (as in every upload path); anything else is unknown, never a query. */
export const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/

export function uploadView(row: UploadRecord) {
  return {
    id: row.id,
    status: row.status,
    filename: row.filename,
    filetype: row.filetype,
    size: row.size,
    offset: row.bytesReceived,
    sha256: row.sha256,
    md5: row.md5,
    owner: row.owner,
    node: row.nodeId,
    failureReason: row.failureReason,
    expiresAt: row.expiresAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    completedAt: row.completedAt?.toISOString() ?? null,
  }
}

/** What the status API and the admin API both show of a job (each adds its own status word). */
export function jobFields(job: JobRecord) {
  return {
    kind: job.kind,
    attempts: job.attempts,
    progress: job.progress,
    lastError: job.lastError,
    summary: job.summary,
    worker: job.workerNode,
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
  }
}

/** A job as the status API shows it to the upload's owner: its status in the client's words. */
export function jobView(job: JobWithHistory) {
  return {...jobFields(job), status: clientJobStatus(job.status), history: job.history.map(attemptView)}
}

/** One attempt of a job, as the status API and the admin API show it. */
export function attemptView(a: JobWithHistory['history'][number]) {
  return {
    attempt: a.attempt,
    worker: a.workerNode,
    outcome: a.outcome,
    error: a.error,
    summary: a.summary,
    startedAt: a.startedAt.toISOString(),
    finishedAt: a.finishedAt?.toISOString() ?? null,
  }
}

const listQuery = z.object({
  status: z.enum(UPLOAD_STATUSES as [string, ...string[]]).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
})

// The id goes to PostgreSQL as a parameter: anything but an upload id (a NUL: a 500) is not one of our cursors.
const cursorSchema = z.object({c: z.string().datetime(), i: z.string().regex(UPLOAD_ID)})

function encodeCursor(row: UploadRecord): string {
  return Buffer.from(JSON.stringify({c: row.createdAt.toISOString(), i: row.id})).toString('base64url')
}

function decodeCursor(cursor: string): {createdAt: Date; id: string} {
  try {
    const parsed = cursorSchema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')))
    return {createdAt: new Date(parsed.c), id: parsed.i}
  } catch {
    throw new BadRequest('cursor is not one this server issued; start again without it')
  }
}

/**
 * An upload's artifacts, each with the URL it is served at (routes/media.ts). HLS segments are
 * left out: players reach them through the playlists, and a long video has thousands.
 */
export function artifactsView(origin: string, rows: ArtifactRecord[], mediaToken?: string) {
  return rows
    .filter((a) => !(a.kind === 'hls' && !a.path.endsWith('.m3u8')))
    .map((a) => ({
      kind: a.kind,
      rendition: a.rendition || null,
      path: a.path,
      size: a.size,
      sha256: a.sha256,
      contentType: a.contentType,
      url: mediaToken ? withToken(`${origin}/media/${artifactUrlPath(a)}`, mediaToken) : `${origin}/media/${artifactUrlPath(a)}`,
    }))
}

export function uploadRoutes(
  uploads: UploadRepository,
  jobs: JobRepository,
  artifacts?: {list(uploadId: string): Promise<ArtifactRecord[]>},
  /** Set with MEDIA_SIGNING_SECRET: the artifact URLs given to the caller are signed. */
  mediaTokens?: MediaTokens
): Router<AppState> {
  const router = new Router<AppState>({prefix: '/api/uploads'})

  router.get('/', async (ctx) => {
    const parsed = listQuery.safeParse(ctx.query)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!
      throw new BadRequest(`invalid ${String(issue.path[0])}: ${issue.message}`)
    }
    const {status, limit, cursor} = parsed.data
    const rows = await uploads.list({
      owner: ctx.state.context.subject,
      status: status as UploadRecord['status'] | undefined,
      limit: limit + 1,
      ...(cursor ? {after: decodeCursor(cursor)} : {}),
    })
    const page = rows.slice(0, limit)
    ctx.body = {
      uploads: page.map(uploadView),
      nextCursor: rows.length > limit ? encodeCursor(page[page.length - 1]!) : null,
    }
  })

  router.get('/:id', async (ctx) => {
    // A NUL or other stray byte would reach PostgreSQL as a parameter it refuses (500).
    const row = UPLOAD_ID.test(ctx.params.id!) ? await uploads.findById(ctx.params.id!) : null
    if (!row || row.owner !== ctx.state.context.subject) throw new NotFound(`upload ${ctx.params.id!.slice(0, 128)} not found`)
    ctx.set('Cache-Control', 'no-store')
    ctx.body = {
      ...uploadView(row),
      jobs: (await jobs.forUpload(row.id)).map(jobView),
      ...(artifacts ? {artifacts: artifactsView(`${ctx.protocol}://${ctx.host}`, await artifacts.list(row.id), await mediaTokens?.sign(row.id))} : {}),
    }
  })

  return router
}
