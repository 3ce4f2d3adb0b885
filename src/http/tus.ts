/**
 * The tus endpoint: @tus/server over our UploadStore, mounted in koa ahead of any body parser.
 * The koa side adds what @tus/server leaves to its host: the protocol guard, the owner check,
 * completion, Upload-Expires, and error answers that never blame the client for our faults.
 */
import {Server as TusServer} from '@tus/server'
import {ERRORS, EVENTS, type Lock, type Locker} from '@tus/utils'
import {unlink} from 'node:fs/promises'
import {STATUS_CODES, type IncomingMessage} from 'node:http'
import type {Context, Middleware} from 'koa'
import {NodeRequest, sendNodeResponse} from 'srvx/node'
import type {Config} from '../config/index.js'
import {AppError, NotFound} from '../errors.js'
import {isFinal} from '../uploads/concat-role.js'
import {createFinalUpload, handleFinalUpload, parseUploadConcat, type ConcatDeps} from './tus-concat.js'
import {currentRequest} from '../request-context.js'
import type {UploadCompletion} from '../uploads/completion.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import type {UploadStore} from '../uploads/upload-store.js'
import type {UploadLocker} from '../uploads/upload-locker.js'
import {callerOf, type CallerLimits} from '../uploads/caller-limits.js'
import {answerError} from './error-answer.js'
import {drainUnreadBody} from './unread-body.js'
import {serveUploadDownload} from './upload-download.js'
import type {AppState} from './request-context-middleware.js'
import {applyMethodOverride, checkTusRequest, readChecksum, TUS_CHECKSUM_ALGORITHMS, TUS_EXTENSIONS, TUS_PATH, TUS_REASON_PHRASES} from './tus-protocol.js'

export const TUS_EXPOSED_HEADERS = ['Upload-Expires', 'Tus-Checksum-Algorithm', 'Upload-Checksum', 'X-Request-Id']

/** The headers of the error answer @tus/server gave a request (its hook returns a status and a body only). */
const answerHeaders = new WeakMap<Request, Record<string, string>>()

export interface TusDeps {
  config: Config
  /** Serialises requests on one upload; shared with every other way of writing uploads. */
  locker: UploadLocker
  store: UploadStore
  uploads: UploadRepository
  completion: UploadCompletion
}

export function allowedOrigins(config: Pick<Config, 'corsOrigins'>): string[] | undefined {
  const list = config.corsOrigins.split(',').map((o) => o.trim()).filter(Boolean)
  return list.length === 0 || list.includes('*') ? undefined : list
}

export function createTusServer({config, locker, store, uploads, completion}: TusDeps): TusServer {
  store.extensions = TUS_EXTENSIONS
  const headLocker = readerLocker(locker)
  const server = new TusServer({
    path: TUS_PATH,
    datastore: store,
    // A HEAD only reads: it must not take the lock the way a write does (MemoryLocker asks the
    // holder to let go, and @tus/server ends that PATCH 3 s later).
    locker: (req) => (req.method === 'HEAD' ? headLocker : locker),
    maxSize: config.maxUploadSize,
    respectForwardedHeaders: config.trustProxy,
    exposedHeaders: TUS_EXPOSED_HEADERS,
    allowedOrigins: allowedOrigins(config),
    ...(config.publicUrl ? {generateUrl: (_req, {path, id}) => `${config.publicUrl!.replace(/\/+$/, '')}${path}/${id}`} : {}),

    // Ids must not leak: someone else's upload answers exactly as a missing one. A creation's
    // id was just generated: there is nothing to look up.
    async onIncomingRequest(req, id) {
      if (req.method === 'POST') return
      const caller = currentRequest()?.subject ?? null
      const identity = await uploads.identity(id)
      if (identity && identity.owner !== caller) throw new NotFound('The file for this url was not found')
    },

    async onUploadFinish(_req, upload) {
      await completion.complete(upload.id, upload.size ?? upload.offset)
      return {}
    },

    // Answered as every error is (error-answer.ts); @tus/server's answer carries a status and a
    // body only, so the headers (Retry-After) are kept for decorate to add.
    onResponseError(req, error) {
      const answer = answerError(error, {kind: 'tus'})
      if (answer.log === 'error') currentRequest()?.log.error({err: error}, 'unexpected error')
      else if (answer.log === 'warn') currentRequest()?.log.warn({err: error}, answer.message)
      answerHeaders.set(req, answer.headers)
      return {status_code: answer.status, body: answer.body}
    },
  })
  // Which upload a creation request made, so a creation whose body fails can take it back (discardFailedCreation).
  server.on(EVENTS.POST_CREATE, (_req, upload) => {
    const context = currentRequest()
    if (context) context.createdUploadId = upload.id
  })
  return server
}

/**
 * The lock a HEAD takes: the upload's lock when nobody holds it (so what it repairs after a crash
 * is repaired under it), else none, and the store reads the upload without repairing anything
 * (RequestContext.readsUnlocked): the writer in flight is neither waited for nor disturbed.
 */
function readerLocker(locker: UploadLocker): Locker {
  return {
    newLock(id: string): Lock {
      let held: Lock | undefined
      return {
        async lock() {
          held = locker.tryLock(id)
          const context = currentRequest()
          if (!held && context) context.readsUnlocked = true
        },
        async unlock() {
          await held?.unlock()
        },
      }
    },
  }
}

export interface TusEndpointDeps extends Omit<ConcatDeps, 'uploadUrl'> {
  tus: TusServer
  /** Creations count against their caller's rate (in-flight quotas are checked by the insert). */
  limits?: CallerLimits
  config: Pick<Config, 'publicUrl'>
}

/** The absolute URL of an upload, as @tus/server builds it (PUBLIC_URL, else this request's host). */
export function uploadUrl(config: Pick<Config, 'publicUrl'>) {
  return (ctx: Context, id: string) =>
    config.publicUrl ? `${config.publicUrl.replace(/\/+$/, '')}${TUS_PATH}/${id}` : `${ctx.protocol}://${ctx.host}${TUS_PATH}/${id}`
}

const UPLOAD_ID = new RegExp(`^${TUS_PATH}/([^/]+)/?$`)

/** Mounts the tus server on /files and /files/<id>. */
export function tusEndpoint(deps: TusEndpointDeps): Middleware<AppState> {
  const concat: ConcatDeps = {...deps, uploadUrl: uploadUrl(deps.config)}
  return async (ctx, next) => {
    if (ctx.path !== TUS_PATH && ctx.path !== `${TUS_PATH}/` && !ctx.path.startsWith(`${TUS_PATH}/`)) return next()
    const context = ctx.state.context
    const violation = applyMethodOverride(ctx) ?? checkTusRequest(ctx) ?? readChecksum(ctx, context)
    if (violation) throw new AppError(violation.status, violation.message, violation.headers)
    // Only /files/ and /files/<id>: @tus/server would take the last segment of any deeper path as an id.
    const id = UPLOAD_ID.exec(ctx.path)?.[1]
    if (!id && ctx.path !== TUS_PATH && ctx.path !== `${TUS_PATH}/`) throw new NotFound('no such upload: an upload URL is /files/<id>')
    if (ctx.method === 'GET') return await serveUploadDownload(ctx, id ?? '', deps)
    if (ctx.method === 'POST' && !id) await deps.limits?.admitCreation(callerOf(context))

    // TUSKit (iOS) separates metadata pairs with ", "; the protocol's parser wants ",".
    const metadata = ctx.get('upload-metadata')
    if (metadata && /,\s|\s,/.test(metadata)) replaceHeader(ctx.req, 'upload-metadata', metadata.split(',').map((pair) => pair.trim()).join(','))

    const concatHeader = ctx.method === 'POST' ? ctx.get('upload-concat') : ''
    if (concatHeader) {
      const parsed = parseUploadConcat(concatHeader, ctx.href)
      if (parsed.kind === 'final') return await createFinalUpload(ctx, context, parsed.partIds, concat)
      // A partial upload is an ordinary upload to @tus/server; the catalog records its role.
      context.uploadConcat = 'partial'
      removeHeader(ctx.req, 'upload-concat')
    }

    if (id && ctx.method !== 'POST') {
      const identity = await deps.uploads.identity(id)
      if (identity && identity.owner === context.subject) {
        const final = isFinal(identity) ? await deps.uploads.findById(id) : null
        if (final) return await handleFinalUpload(ctx, final, concat)
        if (identity.uploadConcat) context.uploadConcat = identity.uploadConcat
      }
    }

    const request = new NodeRequest({req: ctx.req, res: ctx.res})
    const response = decorate(ctx.method, await deps.tus.handleWeb(request), answerHeaders.get(request))
    const bodyCut = !ctx.req.complete && (Number(ctx.get('content-length')) > 0 || ctx.get('transfer-encoding') !== '')
    if (context.createdUploadId && response.status === 408) {
      // The body went silent (UPLOAD_IDLE_TIMEOUT): what arrived is kept, and the answer says
      // where the upload is, so the client resumes it rather than starting again.
      const row = await deps.uploads.findById(context.createdUploadId)
      response.headers.set('Location', uploadUrl(deps.config)(ctx, context.createdUploadId))
      if (row) response.headers.set('Upload-Offset', String(row.bytesReceived))
    } else if (context.createdUploadId && (response.status >= 400 || bodyCut)) {
      await discardFailedCreation(context.createdUploadId, deps)
    }
    ctx.respond = false
    if (response.status >= 400) drainUnreadBody(ctx.req, response.headers)
    await sendNodeResponse(ctx.res, response)
  }
}

/**
 * A creation-with-upload whose body failed (460 checksum, 413, an error, a client gone before
 * its end) gave the client no Location: nobody can resume it, so its row and file go now
 * instead of holding a quota until they expire. (One that went silent is answered 408 with its
 * Location and kept.)
 */
async function discardFailedCreation(id: string, deps: Pick<TusEndpointDeps, 'uploads' | 'store'>): Promise<void> {
  try {
    if (await deps.uploads.discardUnfinished(id)) await unlink(deps.store.filePath(id)).catch(() => {})
  } catch (error) {
    currentRequest()?.log.warn({err: error, uploadId: id}, 'could not discard the upload of a failed creation; it expires instead')
  }
}

/** Changes a request header before @tus/server reads it (it reads `rawHeaders`). */
export function replaceHeader(req: IncomingMessage, name: string, value: string | undefined): void {
  const raw: string[] = []
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== name) raw.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!)
  }
  if (value !== undefined) raw.push(name, value)
  req.rawHeaders = raw
  if (value === undefined) delete req.headers[name]
  else req.headers[name] = value
}

const removeHeader = (req: IncomingMessage, name: string) => replaceHeader(req, name, undefined)

/** The status of a successful answer that describes an upload's state, per method. */
const STATE_ANSWER: Record<string, number> = {HEAD: 200, PATCH: 204, POST: 201}

/** What @tus/server leaves out of its answers: some headers, and the status line's reason. */
function decorate(method: string, response: Response, errorHeaders: Record<string, string> | undefined): Response {
  const {headers} = response
  let {status} = response
  // Discovery answers 200 with an empty body: strict clients and checkers expect it (the text allows 204 too).
  if (method === 'OPTIONS' && status === 204) {
    status = 200
    headers.set('Content-Length', '0')
  }
  if (status === 412 && !headers.has('Tus-Version')) headers.set('Tus-Version', '1.0.0')
  // The error hook's headers (a 503's or a 429's Retry-After), which @tus/server cannot carry.
  for (const [name, value] of Object.entries(errorHeaders ?? {})) if (!headers.has(name)) headers.set(name, value)
  if (headers.has('Tus-Extension')) headers.set('Tus-Checksum-Algorithm', TUS_CHECKSUM_ALGORITHMS)
  const context = currentRequest()
  if (context?.uploadConcat && (status === 200 || status === 201)) headers.set('Upload-Concat', context.uploadConcat)
  const expiresAt = context?.uploadExpiresAt
  if (STATE_ANSWER[method] === status && expiresAt) headers.set('Upload-Expires', expiresAt.toUTCString())
  // A 409 says where the upload really is, so the client resumes without asking first.
  if (method === 'PATCH' && status === 409 && context?.uploadOffset !== undefined) headers.set('Upload-Offset', String(context.uploadOffset))
  if (status >= 400) headers.set('Content-Type', 'text/plain; charset=utf-8')
  else if (!response.body || status === 201) headers.delete('Content-Type')
  return new Response(status === 201 ? null : response.body, {status, statusText: TUS_REASON_PHRASES[status] ?? STATUS_CODES[status] ?? '', headers})
}
