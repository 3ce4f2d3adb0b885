/**
 * The IETF "Resumable Uploads for HTTP" draft on /files, beside tus: this middleware takes the
 * requests that carry Upload-Draft-Interop-Version and leaves every other one to tus. Uploads
 * made this way are the same rows, written by the same store under the same locks, and reach
 * the same completion event. Which requests are the draft's is request-protocol.ts's decision;
 * their errors are answered by the error middleware in the draft's terms (error-answer.ts): a
 * status, a short plain-text reason, or a problem document where the interop version defines one.
 */
import type {Middleware} from 'koa'
import {BadRequest} from '../../errors.js'
import type {AppState} from '../request-context-middleware.js'
import {requestProtocol} from '../request-protocol.js'
import {TUS_PATH} from '../tus-protocol.js'
import {appendToUpload} from './append-upload.js'
import {cancelUpload} from './cancel-upload.js'
import {createUpload} from './create-upload.js'
import {retrieveOffset} from './retrieve-offset.js'
import {DraftError} from './draft-error.js'
import {DraftRequest, type ResumableDraftDeps} from './draft-request.js'
import {INTEROP_VERSIONS, PARTIAL_UPLOAD_TYPE} from './interop.js'

export type {ResumableDraftDeps} from './draft-request.js'

const UPLOAD_PATH = new RegExp(`^${TUS_PATH}/([A-Za-z0-9_-]{1,128})$`)

export function resumableDraftEndpoint(deps: ResumableDraftDeps): Middleware<AppState> {
  return async (ctx, next) => {
    const protocol = requestProtocol(ctx)
    if (protocol.kind !== 'draft') return next()
    if (protocol.version === null) {
      throw new BadRequest(`Upload-Draft-Interop-Version ${ctx.get('upload-draft-interop-version').slice(0, 16)} is not supported; this server speaks ${INTEROP_VERSIONS.join(', ')}`)
    }
    const onCollection = ctx.path === TUS_PATH || ctx.path === `${TUS_PATH}/`
    await route(new DraftRequest(ctx, protocol.version, deps), onCollection, UPLOAD_PATH.exec(ctx.path)?.[1])
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
