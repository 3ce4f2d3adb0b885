/**
 * Rules of the tus 1.0.0 protocol text that @tus/server does not follow to the letter, checked
 * before a request reaches it, plus X-HTTP-Method-Override (clients on platforms without PATCH
 * send POST and name the real method in that header). Each answer is the status the protocol
 * names, with a plain-text reason.
 */
import {TUS_RESUMABLE, TUS_VERSION} from '@tus/utils'
import type {Context} from 'koa'
import {AppError} from '../errors.js'
import type {RequestContext} from '../request-context.js'
import {CHECKSUM_ALGORITHMS, parseUploadChecksum} from '../uploads/checksum.js'

/** Where the tus endpoint (and the IETF draft's, beside it) lives: `/files` and `/files/<id>`. */
export const TUS_PATH = '/files'

/** Reason phrases tus statuses need beyond Node's own. */
export const TUS_REASON_PHRASES: Record<number, string> = {460: 'Checksum Mismatch'}

export const TUS_EXTENSIONS = [
  'creation',
  'creation-with-upload',
  'creation-defer-length',
  'termination',
  'expiration',
  'checksum',
  'checksum-trailer',
  'concatenation',
  'concatenation-unfinished',
]

const OVERRIDABLE = new Set(['PATCH', 'DELETE', 'HEAD', 'GET', 'OPTIONS', 'POST'])

const OFFSET_OCTET_STREAM = 'application/offset+octet-stream'
const mediaTypeOf = (ctx: Context) => ctx.get('content-type').split(';')[0]!.trim().toLowerCase()
const hasBody = (ctx: Context) => ctx.get('transfer-encoding') !== '' || Number(ctx.get('content-length') || 0) > 0

export interface ProtocolViolation {
  status: number
  message: string
  headers?: Record<string, string>
}

/** Applies X-HTTP-Method-Override (only on POST, the only method it is meant to tunnel). */
export function applyMethodOverride(ctx: Context): ProtocolViolation | undefined {
  const override = ctx.get('x-http-method-override')
  if (!override || ctx.method !== 'POST') return
  const method = override.trim().toUpperCase()
  if (!OVERRIDABLE.has(method)) {
    return {status: 400, message: `X-HTTP-Method-Override names an unsupported method: ${override.slice(0, 32)}`}
  }
  ctx.req.method = method
  ctx.method = method
}

export function checkTusRequest(ctx: Context): ProtocolViolation | undefined {
  if (ctx.method === 'OPTIONS' || ctx.method === 'GET') return
  const version = ctx.get('tus-resumable')
  if (version !== TUS_RESUMABLE) {
    // The protocol: 412 Precondition Failed with Tus-Version, and the request not processed.
    return {
      status: 412,
      message: version ? `Tus-Resumable ${version.slice(0, 32)} is not supported; this server speaks ${TUS_VERSION.join(', ')}` : 'Tus-Resumable header required',
      headers: {'Tus-Version': TUS_VERSION.join(',')},
    }
  }
  // creation-with-upload: a body on the creation request must be labelled like a PATCH's; a
  // POST without a body, or without a Content-Type, is a plain creation.
  if (ctx.method === 'POST' && hasBody(ctx) && ctx.get('content-type') && mediaTypeOf(ctx) !== OFFSET_OCTET_STREAM) {
    return {status: 415, message: `a creation request with a body must use Content-Type: ${OFFSET_OCTET_STREAM}`}
  }
  if (ctx.method === 'PATCH') {
    const contentType = ctx.get('content-type').trim().toLowerCase()
    if (contentType !== OFFSET_OCTET_STREAM) {
      return {status: 415, message: 'PATCH requests must use Content-Type: application/offset+octet-stream'}
    }
    if (!ctx.get('upload-offset')) {
      return {status: 400, message: 'Upload-Offset header required'}
    }
  }
}

export const TUS_CHECKSUM_ALGORITHMS = Object.keys(CHECKSUM_ALGORITHMS).join(',')

/**
 * Reads Upload-Checksum for a request that carries upload bytes (PATCH, or a POST with a
 * body): from the header, or announced in `Trailer` for a chunked body (checksum-trailer).
 */
export function readChecksum(ctx: Context, context: RequestContext): ProtocolViolation | undefined {
  const carriesBytes = ctx.method === 'PATCH' || (ctx.method === 'POST' && ctx.get('content-type') === 'application/offset+octet-stream')
  if (!carriesBytes) return
  const header = ctx.get('upload-checksum')
  const announced = ctx.get('trailer').toLowerCase().split(',').some((name) => name.trim() === 'upload-checksum')
  try {
    if (header) {
      context.checksum = {expected: parseUploadChecksum(header)}
    } else if (announced) {
      if (!/\bchunked\b/i.test(ctx.get('transfer-encoding'))) {
        return {status: 400, message: 'an Upload-Checksum trailer needs a chunked request body (Transfer-Encoding: chunked)'}
      }
      const req = ctx.req
      context.checksum = {fromTrailer: () => req.trailers['upload-checksum']}
    }
  } catch (error) {
    if (error instanceof AppError) return {status: error.status, message: error.message}
    throw error
  }
}
