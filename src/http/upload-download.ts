/**
 * GET /files/<id>: the bytes of a completed upload, for its owner, served here rather than by
 * @tus/server (its GET went through a web-stream adapter that could take the process down, and
 * built Content-Disposition from the raw filename). A plain file stream, opened only once every
 * header is set and closed by koa on every path; Range (one range: 206, 416), ETag (the
 * upload's sha256) with If-None-Match/If-Range, and headers that keep an uploaded file from
 * being run as a page: nosniff, and `attachment` for anything but a known video type.
 */
import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import type {ParameterizedContext} from 'koa'
import parseRange from 'range-parser'
import type {UploadRecord} from '../db/entities/upload.js'
import {Conflict, Gone, NotFound} from '../errors.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import {isGone, UploadStatus} from '../uploads/upload-status.js'
import {uploadBeforeLock} from '../request-context.js'
import type {AppState} from './request-context.js'
import {UPLOAD_ID} from './routes/uploads.js'

/** Types a browser plays rather than runs: served as themselves, `inline`. Anything else is an opaque download. */
const VIDEO_TYPES = new Set(['video/mp4', 'video/webm', 'video/ogg', 'video/quicktime', 'video/x-matroska', 'video/mpeg', 'video/mp2t', 'video/3gpp', 'video/3gpp2', 'video/x-msvideo', 'video/x-m4v'])

export interface DownloadDeps {
  uploads: Pick<UploadRepository, 'findById'>
  store: {filePath(id: string): string}
}

/** RFC 8187 attr-char: everything else is percent-encoded (encodeURIComponent leaves ' ( ) * too). */
const encodeExtValue = (value: string) => encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/**
 * RFC 6266 Content-Disposition with an ASCII fallback `filename` and the exact name in
 * `filename*` (RFC 8187): never throws, whatever characters the name has.
 */
export function contentDisposition(kind: 'inline' | 'attachment', filename: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = filename.replace(/[\u0000-\u001f\u007f-\u009f]/g, '')
  // eslint-disable-next-line no-control-regex
  const fallback = clean.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  if (fallback === clean) return `${kind}; filename="${fallback}"`
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encodeExtValue(clean)}`
}

const etagMatches = (header: string, etag: string) => header.trim() === '*' || header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)

/** Why an upload's bytes cannot be downloaded (yet, or any more); undefined when they can. */
function notDownloadable(row: UploadRecord): Error | undefined {
  if (isGone(row.status)) return new Gone(`upload ${row.id} has ${row.status === UploadStatus.Expired ? 'expired' : 'been terminated'}; its bytes are gone`)
  if (row.status === UploadStatus.Uploading || row.completedAt === null) {
    const length = row.size === null ? 'an undeclared length' : `${row.size}`
    return new Conflict(`upload ${row.id} is not complete (${row.bytesReceived} of ${length} bytes received); it can be downloaded once all its bytes have arrived`, {'Upload-Offset': String(row.bytesReceived)})
  }
}

export async function serveUploadDownload(ctx: ParameterizedContext<AppState>, id: string, deps: DownloadDeps): Promise<void> {
  const row = UPLOAD_ID.test(id) ? await uploadBeforeLock(id, (i) => deps.uploads.findById(i)) : null
  if (!row || row.owner !== ctx.state.context.subject) throw new NotFound('The file for this url was not found')
  const refusal = notDownloadable(row)
  if (refusal) throw refusal
  const file = deps.store.filePath(row.id)
  const size = await stat(file).then(
    (s) => s.size,
    () => undefined
  )
  if (size === undefined) throw new Gone(`the original of upload ${row.id} is no longer kept; its renditions are listed at /api/uploads/${row.id}`)

  const video = row.filetype !== null && VIDEO_TYPES.has(row.filetype)
  ctx.set('Tus-Resumable', '1.0.0')
  ctx.set('Cache-Control', 'private, no-cache')
  ctx.set('Accept-Ranges', 'bytes')
  ctx.set('X-Content-Type-Options', 'nosniff')
  ctx.set('Content-Security-Policy', "default-src 'none'; sandbox")
  ctx.set('Content-Disposition', contentDisposition(video ? 'inline' : 'attachment', row.filename ?? row.id))
  ctx.type = video ? row.filetype! : 'application/octet-stream'
  const etag = row.sha256 ? `"${row.sha256}"` : undefined
  if (etag) {
    ctx.set('ETag', etag)
    const ifNoneMatch = ctx.get('If-None-Match')
    if (ifNoneMatch && etagMatches(ifNoneMatch, etag)) {
      ctx.status = 304
      return
    }
  }

  const rangeHeader = ctx.get('Range')
  const ifRange = ctx.get('If-Range')
  const ranges = rangeHeader && (!ifRange || ifRange === etag) ? parseRange(size, rangeHeader, {combine: true}) : undefined
  if (ranges === -1) {
    ctx.status = 416
    ctx.set('Content-Range', `bytes */${size}`)
    ctx.remove('Content-Disposition')
    ctx.type = 'text/plain'
    ctx.body = `range not satisfiable: upload ${row.id} has ${size} bytes\n`
    return
  }
  // Malformed ranges (-2), other units and several ranges get the whole file (RFC 9110 allows it).
  const range = Array.isArray(ranges) && ranges.type === 'bytes' && ranges.length === 1 ? ranges[0]! : undefined
  if (range) {
    ctx.status = 206
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`)
  } else {
    ctx.status = 200
  }
  const length = range ? range.end - range.start + 1 : size
  // Opened last: koa destroys (and so closes) a stream body when the response ends, is cut, or is a HEAD.
  ctx.body = size === 0 ? '' : createReadStream(file, range ? {start: range.start, end: range.end, highWaterMark: 1 << 20} : {highWaterMark: 1 << 20})
  ctx.length = length
}
