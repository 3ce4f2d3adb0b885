/**
 * Errors as data: each carries its HTTP status, a message written for a person and the headers
 * its answer needs. One function (http/error-answer.ts) turns them, and every other error, into
 * answers. They also carry the `status_code` that @tus/utils' errors have, so the upload store
 * passes them on to @tus/server as it does those.
 */
export class AppError extends Error {
  override name = 'AppError'
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {}
  ) {
    super(message)
    Object.setPrototypeOf(this, new.target.prototype)
  }
  get status_code(): number {
    return this.status
  }
}

const kind = (status: number, name: string) =>
  class extends AppError {
    override name = name
    constructor(message: string, headers?: Record<string, string>) {
      super(status, message, headers)
    }
  }

export const BadRequest = kind(400, 'BadRequest')
export const Unauthorized = kind(401, 'Unauthorized')
export const Forbidden = kind(403, 'Forbidden')
export const NotFound = kind(404, 'NotFound')
/** A request body that went silent for UPLOAD_IDLE_TIMEOUT. */
export const RequestTimeout = kind(408, 'RequestTimeout')
export const Conflict = kind(409, 'Conflict')
export const Gone = kind(410, 'Gone')
export const PayloadTooLarge = kind(413, 'PayloadTooLarge')
export const UnsupportedMediaType = kind(415, 'UnsupportedMediaType')
/** tus checksum extension: the bytes of the request did not match Upload-Checksum. */
export const ChecksumMismatch = kind(460, 'ChecksumMismatch')
/** A limit per caller (uploads/caller-limits.ts); carries Retry-After. */
export const TooManyRequests = kind(429, 'TooManyRequests')
export type TooManyRequests = InstanceType<typeof TooManyRequests>
export const ServiceUnavailable = kind(503, 'ServiceUnavailable')
export const InsufficientStorage = kind(507, 'InsufficientStorage')

/** Storage errors a person can act on, mapped from the operating system's codes. */
export function storageError(error: unknown): AppError | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') return new InsufficientStorage('the server has no space left to store this upload; try again later')
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return new ServiceUnavailable('upload storage is not writable on this node', {'Retry-After': '30'})
  // Out of file descriptors (a crowd of connections at once): the node is busy, not broken.
  if (code === 'EMFILE' || code === 'ENFILE') return new ServiceUnavailable('the server has too many files open right now; try again shortly', {'Retry-After': '5'})
  return undefined
}

/** Connection-level SQLSTATEs (class 08) and the server refusing work for now (57P0x, 53300). */
const DATABASE_UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300'])
const DATABASE_UNAVAILABLE_MESSAGE = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable|Cannot use a pool after calling end/i

/**
 * A database that cannot be reached is the node's trouble, not the client's: 503, retry later.
 * So is a request that waited too long for a connection of the pool (pg-pool: "timeout exceeded
 * when trying to connect"): the node is overloaded, and the client should come back. Looks
 * through what wraps the driver's error (TypeORM's driverError, a cause, an AggregateError).
 */
export function databaseUnavailable(error: unknown): AppError | undefined {
  return isDatabaseUnavailable(error, 0) ? new ServiceUnavailable('the upload database is unavailable; try again shortly') : undefined
}

function isDatabaseUnavailable(error: unknown, depth: number): boolean {
  if (typeof error !== 'object' || error === null || depth > 3 || error instanceof AppError) return false
  const e = error as {code?: unknown; message?: unknown; driverError?: unknown; cause?: unknown; errors?: unknown}
  const code = typeof e.code === 'string' ? e.code : ''
  if (DATABASE_UNAVAILABLE_CODES.has(code) || code.startsWith('08')) return true
  if (typeof e.message === 'string' && DATABASE_UNAVAILABLE_MESSAGE.test(e.message)) return true
  const inner = [e.driverError, e.cause, ...(Array.isArray(e.errors) ? e.errors : [])]
  return inner.some((wrapped) => isDatabaseUnavailable(wrapped, depth + 1))
}
