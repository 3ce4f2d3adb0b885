/**
 * Conditional and partial answers for a body of known size (RFC 9110), shared by the routes that
 * serve files (/media, GET /files/<id>): ETag with If-None-Match (304), If-Range, one byte range
 * (206), an unsatisfiable one (416, its Content-Range naming the size). Several ranges, malformed
 * ones and other units get the whole body, as the RFC allows. The body is opened last, once
 * every header is set.
 */
import type {ParameterizedContext} from 'koa'
import parseRange from 'range-parser'

export interface ByteRange {
  start: number
  end: number
}

const etagMatches = (header: string, etag: string) => header.trim() === '*' || header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)

export function answerWithRanges(
  ctx: ParameterizedContext,
  body: {
    size: number
    etag: string | undefined
    open: (range?: ByteRange) => NonNullable<ParameterizedContext['body']>
    /** Sets the 416's own body and type (what a person reads). */
    unsatisfiable: (size: number) => void
  }
): void {
  const {size, etag} = body
  ctx.set('Accept-Ranges', 'bytes')
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
    body.unsatisfiable(size)
    return
  }
  const range = Array.isArray(ranges) && ranges.type === 'bytes' && ranges.length === 1 ? ranges[0]! : undefined
  if (range) {
    ctx.status = 206
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`)
  } else {
    ctx.status = 200
  }
  ctx.body = body.open(range ? {start: range.start, end: range.end} : undefined)
  ctx.length = range ? range.end - range.start + 1 : size
}
