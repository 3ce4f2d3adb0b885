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
import type {UploadRecord} from '../db/entities/upload.js'
import {Conflict, Gone, NotFound} from '../errors.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import {isGone, UploadStatus} from '../uploads/upload-status.js'
import {answerWithRanges} from './byte-ranges.js'
import type {AppState} from './request-context-middleware.js'
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

/** Why an upload's bytes cannot be downloaded (yet, or any more); undefined when they can. */
function notDownloadable(row: UploadRecord): Error | undefined {
  if (isGone(row.status)) return new Gone(`upload ${row.id} has ${row.status === UploadStatus.Expired ? 'expired' : 'been terminated'}; its bytes are gone`)
  if (row.status === UploadStatus.Uploading || row.completedAt === null) {
    const length = row.size === null ? 'an undeclared length' : `${row.size}`
    return new Conflict(`upload ${row.id} is not complete (${row.bytesReceived} of ${length} bytes received); it can be downloaded once all its bytes have arrived`, {'Upload-Offset': String(row.bytesReceived)})
  }
}

export async function serveUploadDownload(ctx: ParameterizedContext<AppState>, id: string, deps: DownloadDeps): Promise<void> {
  const row = UPLOAD_ID.test(id) ? await deps.uploads.findById(id) : null
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
  ctx.set('X-Content-Type-Options', 'nosniff')
  ctx.set('Content-Security-Policy', "default-src 'none'; sandbox")
  ctx.set('Content-Disposition', contentDisposition(video ? 'inline' : 'attachment', row.filename ?? row.id))
  ctx.type = video ? row.filetype! : 'application/octet-stream'
  answerWithRanges(ctx, {
    size,
    etag: row.sha256 ? `"${row.sha256}"` : undefined,
    // Opened last: koa destroys (and so closes) a stream body when the response ends or is cut.
    open: (range) => (size === 0 ? '' : createReadStream(file, {...(range ?? {}), highWaterMark: 1 << 20})),
    unsatisfiable: (bytes) => {
      ctx.remove('Content-Disposition')
      ctx.type = 'text/plain'
      ctx.body = `range not satisfiable: upload ${row.id} has ${bytes} bytes\n`
    },
  })
}
