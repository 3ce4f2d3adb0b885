/**
 * Per-request context carried through async calls (AsyncLocalStorage): who is calling and the
 * request id, so the upload store, which @tus/server calls without our koa context, can still
 * record the owner and log with the request's ids.
 */
import {AsyncLocalStorage} from 'node:async_hooks'
import type {Logger} from 'pino'
import type {UploadRecord} from './db/entities/upload.js'
import type {AppError} from './errors.js'
import type {Checksum} from './uploads/checksum.js'

export interface RequestContext {
  requestId: string
  /** The JWT subject, or null for anonymous uploads (auth disabled). */
  subject: string | null
  /** The client's address (the forwarded one with TRUST_PROXY): the caller when there is no subject. */
  clientIp?: string
  log: Logger
  /** Set by the store when it knows when the touched upload expires (Upload-Expires). */
  uploadExpiresAt?: Date | null
  /** The offset the store last read for the touched upload (a 409 tells the client where to resume). */
  uploadOffset?: number
  /**
   * The append's Upload-Checksum: `expected` from the header, or `fromTrailer()` once the body
   * has ended (checksum-trailer).
   */
  checksum?: {expected?: Checksum; fromTrailer?: () => string | undefined}
  /** For a body a peer forwarded (cluster): the check of its sealed sha-256, once the body has ended. */
  forwardedBody?: ForwardedBodyCheck
  /** Set once this request's cluster signature has been checked (and its nonce claimed): it is not checked again. */
  fromPeer?: boolean
  /** For a partial tus upload being created (Upload-Concat: partial). */
  uploadConcat?: string
  /** The upload a creation request (POST) made, once @tus/server has stored it. */
  createdUploadId?: string
  /**
   * The upload's row as the store read it after this request took the upload's lock (getUpload),
   * for the write that follows under the same lock (a PATCH): taken once, then gone.
   */
  uploadUnderLock?: UploadRecord
  /** A HEAD reading an upload whose lock another request holds: report it, repair nothing. */
  readsUnlocked?: boolean
}

/**
 * What the store asks of a forwarded body it received whole, given the sha-256 of what it wrote:
 * an error (nothing is kept), or `cut` when the client went away mid-body (what arrived is kept,
 * the request still fails).
 */
export interface ForwardedBodyCheck {
  verdict(sha256: Buffer): {error: AppError} | {cut: boolean}
}

const storage = new AsyncLocalStorage<RequestContext>()

export const runInRequestContext = <T>(context: RequestContext, fn: () => T): T => storage.run(context, fn)
export const currentRequest = (): RequestContext | undefined => storage.getStore()
