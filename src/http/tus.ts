/**
 * The tus endpoint: @tus/server over our UploadStore, mounted in koa ahead of any body parser.
 * The koa side adds what @tus/server leaves to its host: the protocol guard, the owner check,
 * completion, Upload-Expires, and error answers that never blame the client for our faults.
 */
import {Server as TusServer} from '@tus/server'
import {ERRORS, type Locker} from '@tus/utils'
import {STATUS_CODES} from 'node:http'
import type {Middleware} from 'koa'
import {NodeRequest, sendNodeResponse} from 'srvx/node'
import type {Config} from '../config/index.js'
import {NotFound} from '../errors.js'
import {currentRequest} from '../request-context.js'
import type {UploadCompletion} from '../uploads/completion.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import type {UploadStore} from '../uploads/upload-store.js'
import {errorToAnswer} from './error-handler.js'
import type {AppState} from './request-context.js'
import {applyMethodOverride, checkTusRequest, readChecksum, TUS_CHECKSUM_ALGORITHMS, TUS_EXTENSIONS} from './tus-protocol.js'

export const TUS_PATH = '/files'

export const TUS_EXPOSED_HEADERS = ['Upload-Expires', 'Tus-Checksum-Algorithm', 'Upload-Checksum', 'X-Request-Id']

export interface TusDeps {
  config: Config
  /** Serialises requests on one upload; shared with every other way of writing uploads. */
  locker: Locker
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
  return new TusServer({
    path: TUS_PATH,
    datastore: store,
    locker,
    maxSize: config.maxUploadSize,
    respectForwardedHeaders: config.trustProxy,
    exposedHeaders: TUS_EXPOSED_HEADERS,
    allowedOrigins: allowedOrigins(config),
    ...(config.publicUrl ? {generateUrl: (_req, {path, id}) => `${config.publicUrl!.replace(/\/+$/, '')}${path}/${id}`} : {}),

    // Ids must not leak: someone else's upload answers exactly as a missing one.
    async onIncomingRequest(_req, id) {
      const caller = currentRequest()?.subject ?? null
      const row = await uploads.findById(id)
      if (row && row.owner !== caller) throw new NotFound('The file for this url was not found')
    },

    async onUploadFinish(_req, upload) {
      await completion.complete(upload.id)
      return {}
    },

    onResponseError(_req, error) {
      if (error === ERRORS.ERR_LOCK_TIMEOUT) {
        return {status_code: 423, body: 'another request is writing to this upload; retry after it ends\n'}
      }
      const answer = errorToAnswer(error)
      if (answer) return {status_code: answer.status, body: `${answer.message}\n`}
      if (typeof error === 'object' && error !== null && 'status_code' in error) {
        const code = (error as {status_code: number}).status_code
        if (code >= 500) currentRequest()?.log.error({err: error}, 'upload request failed')
        return undefined
      }
      currentRequest()?.log.error({err: error}, 'upload request failed')
      return {status_code: 500, body: 'internal error while handling the upload\n'}
    },
  })
}

/** Mounts the tus server on /files and /files/<id>. */
export function tusEndpoint(tus: TusServer): Middleware<AppState> {
  return async (ctx, next) => {
    if (ctx.path !== TUS_PATH && ctx.path !== `${TUS_PATH}/` && !ctx.path.startsWith(`${TUS_PATH}/`)) return next()

    const violation = applyMethodOverride(ctx) ?? checkTusRequest(ctx) ?? readChecksum(ctx, ctx.state.context)
    if (violation) {
      ctx.status = violation.status
      ctx.set({'Tus-Resumable': '1.0.0', 'Cache-Control': 'no-store', ...violation.headers})
      ctx.type = 'text/plain'
      ctx.body = `${violation.message}\n`
      return
    }

    const request = new NodeRequest({req: ctx.req, res: ctx.res})
    const response = decorate(await tus.handleWeb(request))
    ctx.respond = false
    await sendNodeResponse(ctx.res, response)
  }
}

/** What @tus/server leaves out of its answers: some headers, and the status line's reason. */
function decorate(response: Response): Response {
  const {headers, status} = response
  if (status === 412 && !headers.has('Tus-Version')) headers.set('Tus-Version', '1.0.0')
  if (headers.has('Tus-Extension')) headers.set('Tus-Checksum-Algorithm', TUS_CHECKSUM_ALGORITHMS)
  const expiresAt = currentRequest()?.uploadExpiresAt
  if ((status === 201 || status === 204) && expiresAt) headers.set('Upload-Expires', expiresAt.toUTCString())
  if (status >= 400) headers.set('Content-Type', 'text/plain; charset=utf-8')
  else if (!response.body || status === 201) headers.delete('Content-Type')
  return new Response(status === 201 ? null : response.body, {status, statusText: STATUS_TEXT[status] ?? STATUS_CODES[status] ?? '', headers})
}

const STATUS_TEXT: Record<number, string> = {460: 'Checksum Mismatch'}
