/**
 * Artifacts on disk: where an upload's media lives, how a file becomes visible (written under
 * a dot-name temp path, renamed into place when complete: a killed worker leaves nothing
 * half-written that the media route would serve, since it never serves dot-names), and what
 * each file is (content type, size, sha256 and the wire hash).
 */
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdir, readdir, rename, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {BadRequest} from '../errors.js'
import {wireHasher} from './wire-hash.js'

export const CONTENT_TYPES: Record<string, string> = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.ts': 'video/mp2t',
  '.m4s': 'video/iso.segment',
  '.mp4': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.jpg': 'image/jpeg',
  '.vtt': 'text/vtt; charset=utf-8',
}

export function contentTypeOf(file: string): string | undefined {
  return CONTENT_TYPES[path.extname(file).toLowerCase()]
}

/** <dataDir>/media: the root every served file must be under. */
export function mediaRoot(dataDir: string): string {
  return path.join(dataDir, 'media')
}

export function uploadMediaDir(dataDir: string, uploadId: string): string {
  return path.join(mediaRoot(dataDir), uploadId)
}

/** Empty, a dot-name (our temp files among them), NUL, a slash or a backslash: could leave the upload's directory or reach a file never meant to be served. */
const unsafeSegment = (segment: string) => segment === '' || segment.startsWith('.') || /[\0/\\]/.test(segment)

/** An artifact path as stored (forward slashes, nothing encoded) in segments; refuses (400) anything unsafe. */
export function artifactSegments(relative: string, what = 'artifact'): string[] {
  const segments = relative.split('/')
  if (segments.some(unsafeSegment)) throw new BadRequest(`invalid ${what} path ${JSON.stringify(relative)}`)
  return segments
}

/** The same for a request path: each segment percent-decoded once, so an encoded slash stays inside its segment (and is refused). */
export function decodedArtifactSegments(rawPath: string, what = 'artifact'): string[] {
  return rawPath.split('/').map((segment) => {
    let decoded: string
    try {
      decoded = decodeURIComponent(segment)
    } catch {
      throw new BadRequest(`malformed percent-encoding in the ${what} path`)
    }
    if (unsafeSegment(decoded)) throw new BadRequest(`invalid ${what} path`)
    return decoded
  })
}

/** `<uploadId>/<path>` as it goes in a URL, every segment encoded. */
export function artifactUrlPath(artifact: {uploadId: string; path: string}): string {
  return `${encodeURIComponent(artifact.uploadId)}/${artifact.path.split('/').map(encodeURIComponent).join('/')}`
}

/** A sibling temp path for `final`, hidden (dot-name) and with the same extension (ffmpeg picks muxers by it). */
export function tempPathFor(final: string): string {
  return path.join(path.dirname(final), `.${path.basename(final)}.tmp-${randomBytes(4).toString('hex')}${path.extname(final)}`)
}

/** Moves a finished file or directory into place, replacing what a previous attempt left there. */
export async function publish(temp: string, final: string): Promise<void> {
  await rm(final, {recursive: true, force: true})
  await rename(temp, final)
}

/** Runs `write` against a temp path and publishes it; on failure the temp path is removed. */
export async function writeAtomically<T>(final: string, write: (temp: string) => Promise<T>): Promise<T> {
  await mkdir(path.dirname(final), {recursive: true})
  const temp = tempPathFor(final)
  try {
    const result = await write(temp)
    await publish(temp, final)
    return result
  } catch (error) {
    await rm(temp, {recursive: true, force: true})
    throw error
  }
}

export async function writeFileAtomically(final: string, content: string | Buffer): Promise<void> {
  await writeAtomically(final, (temp) => writeFile(temp, content))
}

const HASH_READ_BYTES = 1 << 20

export interface ArtifactFile {
  /** Relative to the upload's media directory, with forward slashes. */
  path: string
  size: number
  sha256: string
  /** Verifies its copies on the wire (wire-hash.ts). */
  xxh128: string
  contentType: string
}

/** The file's size and both its hashes, in one read. */
export async function describeFile(uploadDir: string, relative: string): Promise<ArtifactFile> {
  const full = path.join(uploadDir, relative)
  const hash = createHash('sha256')
  const wire = await wireHasher()
  let size = 0
  // Large reads: an MP4 is tens of MiB, and the default 64 KiB chunks cost more than the hash.
  for await (const chunk of createReadStream(full, {highWaterMark: HASH_READ_BYTES})) {
    hash.update(chunk as Buffer)
    wire.update(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  return {
    path: relative.split(path.sep).join('/'),
    size,
    sha256: hash.digest('hex'),
    xxh128: wire.digest('hex'),
    contentType: contentTypeOf(relative) ?? 'application/octet-stream',
  }
}

/**
 * Removes the temp paths an attempt killed mid-write left in `dir` for the given file names
 * (`.<name>.tmp-<hex>…`, see tempPathFor): a later attempt writes under new names, so nothing
 * else would ever remove them. Only the caller's own names: another job may be writing beside it.
 */
export async function removeAbandonedTemps(dir: string, names: (name: string) => boolean): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[])
  await Promise.all(
    entries
      .filter((entry) => {
        const match = /^\.(.+)\.tmp-[0-9a-f]{8}/.exec(entry)
        return match !== null && names(match[1]!)
      })
      .map((entry) => rm(path.join(dir, entry), {recursive: true, force: true}))
  )
}
