/**
 * The IETF "Resumable Uploads for HTTP" draft on /files, beside tus: this middleware takes the
 * requests that carry Upload-Draft-Interop-Version and leaves every other one to tus. Uploads
 * made this way are the same rows, written by the same store under the same locks, and reach
 * the same completion event. Errors become the draft's answers here, in one place: a status, a
 * short plain-text reason, or a problem document where the interop version defines one.
 */
import type {Middleware} from 'koa'
import {ERRORS} from '@tus/utils'
import {currentRequest} from '../../request-context.js'
import {errorToAnswer} from '../error-handler.js'
import type {AppState} from '../request-context.js'
import {TUS_PATH} from '../tus.js'
import {appendToUpload} from './append-upload.js'
import {cancelUpload} from './cancel-upload.js'
import {createUpload} from './create-upload.js'
import {retrieveOffset} from './retrieve-offset.js'
import {DraftError} from './draft-error.js'
import {DraftRequest, type ResumableDraftDeps} from './draft-request.js'
import {INTEROP_VERSIONS, parseInteropVersion, PARTIAL_UPLOAD_TYPE, problemDocument} from './interop.js'

export type {ResumableDraftDeps} from './draft-request.js'

const UPLOAD_PATH = new RegExp(`^${TUS_PATH}/([A-Za-z0-9_-]{1,128})$`)

export function resumableDraftEndpoint(deps: ResumableDraftDeps): Middleware<AppState> {
  return async (ctx, next) => {
    const onCollection = ctx.path === TUS_PATH || ctx.path === `${TUS_PATH}/`
    const id = UPLOAD_PATH.exec(ctx.path)?.[1]
    if (!onCollection && id === undefined) return next()
    const version = parseInteropVersion(ctx.get('upload-draft-interop-version'))
    if (version === 'absent') return next()
    if (version === 'unsupported') {
      // A tus client with a stray header is still a tus client.
      if (ctx.get('tus-resumable')) return next()
      ctx.status = 400
      ctx.set('Cache-Control', 'no-store')
      ctx.type = 'text/plain; charset=utf-8'
      ctx.body = `Upload-Draft-Interop-Version ${ctx.get('upload-draft-interop-version').slice(0, 16)} is not supported; this server speaks ${INTEROP_VERSIONS.join(', ')}\n`
      return
    }

    const draft = new DraftRequest(ctx, version, deps)
    try {
      await route(draft, onCollection, id)
    } catch (error) {
      answerError(draft, error)
    }
  }
}

function route(draft: DraftRequest, onCollection: boolean, id: string | undefined): Promise<void> | void {
  const method = draft.ctx.method
  if (method === 'OPTIONS') return describeOptions(draft, onCollection)
  if (onCollection) {
    if (method === 'POST' || method === 'PUT') return createUpload(draft)
    throw methodNotAllowed('uploads are created with POST on this URL', 'POST, PUT, OPTIONS')
  }
  if (method === 'HEAD') return retrieveOffset(draft, id!)
  if (method === 'PATCH') return appendToUpload(draft, id!)
  if (method === 'DELETE') return cancelUpload(draft, id!)
  throw methodNotAllowed('an upload takes HEAD, PATCH and DELETE', 'HEAD, PATCH, DELETE, OPTIONS')
}

const methodNotAllowed = (message: string, allow: string) => new DraftError(405, message, undefined, {Allow: allow})

/** OPTIONS: what the draft asks a resource that creates uploads to say (Accept-Patch, limits). */
function describeOptions(draft: DraftRequest, onCollection: boolean): void {
  draft.answer(204, {
    Allow: onCollection ? 'POST, PUT, OPTIONS' : 'HEAD, PATCH, DELETE, OPTIONS',
    'Accept-Patch': PARTIAL_UPLOAD_TYPE,
    ...draft.uploadLimit(null),
  })
}

function answerError(draft: DraftRequest, error: unknown): void {
  const {ctx} = draft
  const log = currentRequest()?.log
  const answer = errorToAnswer(error) ?? tusErrorAnswer(error)
  if (!answer) {
    log?.error({err: error}, 'resumable upload request failed')
  } else if (answer.status >= 500) {
    log?.warn({err: error}, answer.message)
  }
  const {status, message, headers} = answer ?? {status: 500, message: 'internal error while handling the upload', headers: {}}
  if (ctx.headerSent || !ctx.writable) return void ctx.req.socket.destroy()
  ctx.status = status
  ctx.set({'Upload-Draft-Interop-Version': String(draft.version), 'Cache-Control': 'no-store', ...headers})
  const problem = error instanceof DraftError ? error.problem : undefined
  if (problem && draft.rules.problems.includes(problem.type)) {
    ctx.type = 'application/problem+json'
    ctx.body = problemDocument(problem.type, message, problem.members)
  } else {
    ctx.type = 'text/plain; charset=utf-8'
    ctx.body = `${message}\n`
  }
}

/** @tus/utils errors ({status_code, body}) thrown by the store: the client's part of them. */
function tusErrorAnswer(error: unknown): {status: number; message: string; headers: Record<string, string>} | undefined {
  if (typeof error !== 'object' || error === null || !('status_code' in error)) return undefined
  const {status_code, body} = error as {status_code: number; body?: string}
  if (status_code >= 500 || error === ERRORS.UNKNOWN_ERROR) return undefined
  return {status: status_code, message: String(body ?? '').trim() || 'request refused', headers: {}}
}
