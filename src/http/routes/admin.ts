/**
 * The admin API (`ingest` talks to it): /admin/... on every node, apart from the users' API.
 * Every request needs `Authorization: Bearer <ADMIN_TOKEN>`; without ADMIN_TOKEN the admin API
 * is disabled and answers 403. Thin: it parses, calls src/admin, and shapes the answer.
 */
import {createHash, timingSafeEqual} from 'node:crypto'
import Router from '@koa/router'
import type {Context, Middleware, Next} from 'koa'
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import {z} from 'zod'
import {DeadLetterService} from '../../admin/dead-letters.js'
import {DatabaseNodeDirectory, type NodeDirectory} from '../../admin/nodes.js'
import {JobRequeue, type RequeueItem} from '../../admin/requeue.js'
import {parseSince} from '../../admin/since.js'
import {UploadRepository} from '../../uploads/upload-repository.js'
import type {Config} from '../../config/index.js'
import type {JobRecord} from '../../db/entities/job.js'
import {BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized} from '../../errors.js'
import {JOB_KINDS} from '../../jobs/job-kinds.js'
import {JobRepository, type JobWithHistory} from '../../jobs/job-repository.js'
import {JOB_STATUSES} from '../../jobs/job-status.js'
import type {Pipeline} from '../../jobs/pipeline.js'
import {UPLOAD_STATUSES} from '../../uploads/upload-status.js'
import type {AppState} from '../request-context-middleware.js'
import {attemptView, jobFields} from './uploads.js'
import {UPLOAD_ID, uploadView} from './uploads.js'

export interface AdminDeps {
  config: Pick<Config, 'adminToken' | 'nodeId' | 'publicUrl'>
  log: Logger
  db: DataSource
  /** The node's job pipeline, once started (requests can arrive before it is). */
  pipeline: () => Pipeline | undefined
  nodes?: NodeDirectory
}

const BODY_LIMIT = 64 * 1024
const since = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined) return undefined
    const at = parseSince(v)
    if (!at) ctx.addIssue({code: 'custom', message: 'expected a duration such as 30m or 2h, or an ISO timestamp from 1970 on'})
    return at
  })
const limit = (max: number, fallback: number) => z.coerce.number().int().min(1).max(max).default(fallback)
const kind = z.enum(JOB_KINDS)
/** Free text that reaches PostgreSQL as a parameter: a NUL there is a 500, so it is a 400 here. */
const text = (max: number) => z.string().max(max).refine((v) => !v.includes('\0'), {message: 'must not contain NUL'})

const uploadsQuery = z.object({status: z.enum(UPLOAD_STATUSES as [string, ...string[]]).optional(), owner: text(256).optional(), since, limit: limit(1000, 50)})
const jobsQuery = z.object({status: z.enum(JOB_STATUSES as [string, ...string[]]).optional(), kind: kind.optional(), upload: text(128).optional(), since, limit: limit(1000, 50)})
const requeueBody = z
  .object({
    jobIds: z.array(z.number().int().positive()).min(1).max(1000).optional(),
    uploadIds: z.array(text(128).pipe(z.string().min(1))).min(1).max(1000).optional(),
    status: z.enum(['failed', 'dead']).optional(),
    kind: kind.optional(),
    since,
    limit: limit(10_000, 1000),
    dryRun: z.boolean().default(false),
    force: z.boolean().default(false),
  })
  .refine((b) => [b.jobIds, b.uploadIds, b.status].filter((v) => v !== undefined).length === 1, {message: 'give exactly one of jobIds, uploadIds or status'})
const dlqQuery = z.object({limit: limit(1000, 50)})
const replayBody = z.object({limit: limit(1000, 100)})

/** Mounts the admin API: everything under /admin answers here, behind the admin token. */
export function adminApi(deps: AdminDeps): Middleware<AppState> {
  if (!deps.config.adminToken) deps.log.warn('admin API disabled (no ADMIN_TOKEN): /admin answers 403')
  const guard = adminToken(deps.config.adminToken)
  const routes = adminRoutes(deps).routes() as unknown as Middleware<AppState>
  return async (ctx, next) => {
    if (ctx.path !== '/admin' && !ctx.path.startsWith('/admin/')) return next()
    ctx.set('Cache-Control', 'no-store')
    const unmatched: Next = async () => {
      throw new NotFound(`no admin endpoint ${ctx.method} ${ctx.path.slice(0, 200)}`)
    }
    await guard(ctx, () => routes(ctx, unmatched))
  }
}

/** Compared as SHA-256 digests with timingSafeEqual: constant time whatever the lengths. */
function adminToken(token: string | undefined): Middleware<AppState> {
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest()
  const expected = token === undefined ? undefined : digest(token)
  const challenge = {'WWW-Authenticate': 'Bearer realm="video-ingest admin"'}
  return async (ctx, next) => {
    if (!expected) throw new Forbidden('the admin API is disabled on this node: set ADMIN_TOKEN to enable it')
    const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'))
    if (!match) throw new Unauthorized('an admin token is required (Authorization: Bearer <ADMIN_TOKEN>)', challenge)
    if (!timingSafeEqual(digest(match[1]!), expected)) throw new Unauthorized('the admin token is not valid for this node', challenge)
    await next()
  }
}

function adminRoutes(deps: AdminDeps): Router<AppState> {
  const router = new Router<AppState>({prefix: '/admin'})
  const jobs = new JobRepository(deps.db)
  const uploads = new UploadRepository(deps.db)
  const broker = () => deps.pipeline()?.broker
  const requeue = new JobRequeue(jobs, broker)
  const deadLetters = new DeadLetterService(jobs, broker)
  const nodes = deps.nodes ?? new DatabaseNodeDirectory(deps.db, {id: deps.config.nodeId, url: deps.config.publicUrl ?? null, startedAt: new Date(), pipeline: deps.pipeline})

  router.get('/uploads', async (ctx) => {
    const q = parse(uploadsQuery, ctx.query)
    const rows = await uploads.list({limit: q.limit, status: q.status as never, since: q.since, includePartials: true, ...(q.owner ? {owner: q.owner} : {})})
    ctx.body = {uploads: rows.map(uploadView)}
  })

  router.get('/uploads/:id', async (ctx) => {
    const row = UPLOAD_ID.test(ctx.params.id!) ? await uploads.findById(ctx.params.id!) : null
    if (!row) throw new NotFound(`upload ${ctx.params.id!.slice(0, 128)} not found`)
    ctx.body = {...uploadView(row), jobs: (await jobs.forUpload(row.id)).map(jobWithHistoryView)}
  })

  router.get('/jobs', async (ctx) => {
    const q = parse(jobsQuery, ctx.query)
    const rows = await jobs.list({limit: q.limit, ...(q.status ? {status: q.status as JobRecord['status']} : {}), ...(q.kind ? {kind: q.kind} : {}), ...(q.upload ? {uploadId: q.upload} : {}), ...(q.since ? {since: q.since} : {})})
    ctx.body = {jobs: rows.map(operatorJobView)}
  })

  router.get('/jobs/:id', async (ctx) => {
    const id = Number(ctx.params.id)
    const job = Number.isSafeInteger(id) && id > 0 ? await jobs.withHistory(id) : null
    if (!job) throw new NotFound(`job ${ctx.params.id!.slice(0, 32)} not found`)
    ctx.body = jobWithHistoryView(job)
  })

  router.post('/requeue', async (ctx) => {
    const body = parse(requeueBody, await readJson(ctx))
    const options = {dryRun: body.dryRun, force: body.force}
    const target = body.jobIds
      ? {jobIds: body.jobIds}
      : body.uploadIds
        ? {uploadIds: body.uploadIds, ...(body.kind ? {kind: body.kind} : {})}
        : {status: body.status!, limit: body.limit, ...(body.kind ? {kind: body.kind} : {}), ...(body.since ? {since: body.since} : {})}
    const items = await requeue.requeue(target, options)
    ctx.body = {dryRun: body.dryRun, items, summary: summarize(items)}
  })

  router.get('/dlq/:kind', async (ctx) => {
    ctx.body = await deadLetters.list(parse(kind, ctx.params.kind, 'kind'), parse(dlqQuery, ctx.query).limit)
  })

  router.post('/dlq/:kind/replay', async (ctx) => {
    const k = parse(kind, ctx.params.kind, 'kind')
    const items = await deadLetters.replay(k, parse(replayBody, await readJson(ctx)).limit)
    ctx.body = {kind: k, items, summary: summarize(items)}
  })

  router.delete('/dlq/:kind', async (ctx) => {
    const k = parse(kind, ctx.params.kind, 'kind')
    ctx.body = {kind: k, purged: await deadLetters.purge(k)}
  })

  router.get('/nodes', async (ctx) => {
    ctx.body = {nodes: await nodes.list()}
  })

  return router
}

function parse<T extends z.ZodType>(schema: T, value: unknown, name?: string): z.infer<T> {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  const field = name ?? (issue.path.length > 0 ? issue.path.join('.') : 'request')
  throw new BadRequest(`invalid ${field}: ${issue.message}`)
}

async function readJson(ctx: Context): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > BODY_LIMIT) throw new PayloadTooLarge(`an admin request body is at most ${BODY_LIMIT} bytes`)
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8').trim()
  if (text === '') return {}
  try {
    return JSON.parse(text)
  } catch {
    throw new BadRequest('the request body is not JSON')
  }
}

function summarize(items: Array<{result: string}>): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const item of items) counts[item.result] = (counts[item.result] ?? 0) + 1
  return counts
}

/** A job as the admin API shows it: the stored status, with its ids and times. */
function operatorJobView(job: JobRecord) {
  return {
    id: job.id,
    uploadId: job.uploadId,
    ...jobFields(job),
    status: job.status,
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
  }
}

function jobWithHistoryView(job: JobWithHistory) {
  return {
    ...operatorJobView(job),
    history: job.history.map(attemptView),
  }
}

export type {RequeueItem}
