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
import type {DataSource} from 'typeorm'
import {NotFound} from '../../errors.js'
import {decodedArtifactSegments, mediaRoot} from '../../media/artifact-files.js'
import {ArtifactRepository} from '../../media/artifact-repository.js'
import {isPlaylist, signPlaylist} from '../../media/playlist-tokens.js'
import {MASTER_PLAYLIST} from '../../media/transcode.js'
import {answerWithRanges, type ByteRange} from '../byte-ranges.js'
import type {AppState} from '../request-context-middleware.js'

const PREFIX = '/media/'
const IMMUTABLE = 'public, max-age=31536000, immutable'
/** The master playlist gains renditions as they finish: always revalidate it. */
const REVALIDATE = 'public, max-age=0, must-revalidate'
/** A playlist rewritten with one viewer's token is theirs alone. */
const PRIVATE_PLAYLIST = 'private, max-age=0, must-revalidate'

/**
 * The raw request path's segments, each decoded once; rejects anything that could step out of
 * the upload's directory (see decodedArtifactSegments).
 */
export function mediaSegments(rawPath: string): string[] {
  return decodedArtifactSegments(rawPath.slice(PREFIX.length), 'media')
}

export function mediaRoute(deps: {db: DataSource; dataDir: string}): Middleware<AppState> {
  const artifacts = new ArtifactRepository(deps.db)
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
    const artifact = await artifacts.find(uploadId, relative)
    if (!artifact) throw new NotFound('no such media file')

    // Belt and braces: the resolved file (symlinks followed) must still be under the media root.
    const file = await realpath(path.join(root, uploadId, ...rest)).catch(() => undefined)
    const realRoot = await realpath(root).catch(() => root)
    if (!file || !file.startsWith(realRoot + path.sep)) throw new NotFound('no such media file')
    // The master playlist is rewritten (renamed into place) as renditions land, before its row is
    // updated: read once, its ETag and length are those of the very bytes sent.
    // A private playlist is served rewritten, every URI carrying the request's token: its ETag,
    // length and ranges are those of the rewritten bytes (playlist-tokens.ts).
    const token = ctx.state.mediaToken
    const signed = token !== undefined && isPlaylist(relative)
    const read = relative === MASTER_PLAYLIST || signed ? await readFile(file) : undefined
    const mutable = read && signed ? signPlaylist(relative, read, token) : read
    const size = mutable ? mutable.length : (await stat(file)).size
    const open = (range?: ByteRange) =>
      mutable ? (range ? mutable.subarray(range.start, range.end + 1) : mutable) : createReadStream(file, range ?? {})

    const etag = `"${mutable ? createHash('sha256').update(mutable).digest('hex') : artifact.sha256}"`
    ctx.set('Cache-Control', signed ? PRIVATE_PLAYLIST : relative === MASTER_PLAYLIST ? REVALIDATE : IMMUTABLE)
    ctx.set('X-Content-Type-Options', 'nosniff')
    ctx.type = artifact.contentType
    answerWithRanges(ctx, {
      size,
      etag,
      open,
      unsatisfiable: (bytes) => {
        ctx.type = 'json'
        ctx.body = {error: `range not satisfiable: the file has ${bytes} bytes`}
      },
    })
  }
}
