/**
 * GET/HEAD /media/<uploadId>/<path>: an upload's artifacts, as recorded in the artifacts table
 * and only from under the media directory. Range requests (206/416), ETag (the artifact's
 * sha256; the master playlist's, of the bytes read) with If-None-Match/If-Range, and long-lived caching for files that never change.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {readFile, realpath, stat} from 'node:fs/promises'
import path from 'node:path'
import type {Middleware} from 'koa'
import parseRange from 'range-parser'
import type {DataSource} from 'typeorm'
import {NotFound} from '../../errors.js'
import {decodedArtifactSegments, mediaRoot} from '../../media/artifact-files.js'
import {MediaRepository} from '../../media/media-repository.js'
import {MASTER_PLAYLIST} from '../../media/transcode.js'
import type {AppState} from '../request-context.js'

const PREFIX = '/media/'
const IMMUTABLE = 'public, max-age=31536000, immutable'
/** The master playlist gains renditions as they finish: always revalidate it. */
const REVALIDATE = 'public, max-age=0, must-revalidate'

/**
 * The raw request path's segments, each decoded once; rejects anything that could step out of
 * the upload's directory (see decodedArtifactSegments).
 */
export function mediaSegments(rawPath: string): string[] {
  return decodedArtifactSegments(rawPath.slice(PREFIX.length), 'media')
}

const etagMatches = (header: string, etag: string) => header.trim() === '*' || header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)

export function mediaRoute(deps: {db: DataSource; dataDir: string}): Middleware<AppState> {
  const artifacts = new MediaRepository(deps.db)
  const root = mediaRoot(deps.dataDir)

  return async (ctx, next) => {
    if (!ctx.path.startsWith(PREFIX)) return next()
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD')
      ctx.status = 405
      return
    }
    const [uploadId, ...rest] = mediaSegments(ctx.path)
    if (!uploadId || rest.length === 0) throw new NotFound('no such media file')
    const relative = rest.join('/')
    const artifact = await artifacts.findArtifact(uploadId, relative)
    if (!artifact) throw new NotFound('no such media file')

    // Belt and braces: the resolved file (symlinks followed) must still be under the media root.
    const file = await realpath(path.join(root, uploadId, ...rest)).catch(() => undefined)
    const realRoot = await realpath(root).catch(() => root)
    if (!file || !file.startsWith(realRoot + path.sep)) throw new NotFound('no such media file')
    // The master playlist is rewritten (renamed into place) as renditions land, before its row is
    // updated: read once, its ETag and length are those of the very bytes sent.
    const mutable = relative === MASTER_PLAYLIST ? await readFile(file) : undefined
    const size = mutable ? mutable.length : (await stat(file)).size
    const open = (range?: {start: number; end: number}) =>
      mutable ? (range ? mutable.subarray(range.start, range.end + 1) : mutable) : createReadStream(file, range ?? {})

    const etag = `"${mutable ? createHash('sha256').update(mutable).digest('hex') : artifact.sha256}"`
    ctx.set('ETag', etag)
    ctx.set('Cache-Control', relative === MASTER_PLAYLIST ? REVALIDATE : IMMUTABLE)
    ctx.set('Accept-Ranges', 'bytes')
    ctx.set('X-Content-Type-Options', 'nosniff')
    ctx.type = artifact.contentType
    const ifNoneMatch = ctx.get('If-None-Match')
    if (ifNoneMatch && etagMatches(ifNoneMatch, etag)) {
      ctx.status = 304
      return
    }

    const rangeHeader = ctx.get('Range')
    const ifRange = ctx.get('If-Range')
    const ranges = rangeHeader && (!ifRange || ifRange === etag) ? parseRange(size, rangeHeader, {combine: true}) : undefined
    if (ranges === -1) {
      ctx.set('Content-Range', `bytes */${size}`)
      ctx.status = 416
      ctx.type = 'json'
      ctx.body = {error: `range not satisfiable: the file has ${size} bytes`}
      return
    }
    // Malformed ranges (-2), other units and multiple ranges are answered with the whole file (RFC 9110 allows it).
    if (Array.isArray(ranges) && ranges.type === 'bytes' && ranges.length === 1) {
      const {start, end} = ranges[0]!
      ctx.status = 206
      ctx.set('Content-Range', `bytes ${start}-${end}/${size}`)
      ctx.body = open({start, end})
      ctx.length = end - start + 1
      return
    }
    ctx.status = 200
    ctx.body = open()
    ctx.length = size
  }
}
