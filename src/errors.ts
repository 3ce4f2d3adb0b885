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
export const PreconditionFailed = kind(412, 'PreconditionFailed')
export const PayloadTooLarge = kind(413, 'PayloadTooLarge')
export const UnsupportedMediaType = kind(415, 'UnsupportedMediaType')
export const Locked = kind(423, 'Locked')
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
  return undefined
}
