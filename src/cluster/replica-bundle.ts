/**
 * A bundle carries many small artifacts of one upload to a peer in one request: a tar stream
 * (tar-stream), one entry per artifact, named by its path. A rendition's hundreds of segments
 * then cost one request and one batched database write instead of a round trip pair and
 * several statements each, which is what made small files slow. Large artifacts still travel
 * one per request, resumable from the byte where a cut left them.
 *
 * Entries carry no digest: the receiver checks each one against the wire hash in its
 * `artifacts` row (src/media/wire-hash.ts), so nothing in the bundle is trusted but the bytes themselves.
 */
import type {Readable} from 'node:stream'
import tar from 'tar-stream'

/**
 * Artifacts up to this size travel in bundles. The receiver holds an entry in memory while it
 * writes it (a few at once), so this bounds its memory per bundle; HLS segments, playlists and
 * snapshots are all well under it.
 */
export const BUNDLE_FILE_LIMIT = 8 * 1024 * 1024
/** A bundle closes after about this many bytes, so several can be in flight per peer and a cut loses little. */
export const BUNDLE_TARGET_BYTES = 32 * 1024 * 1024

export const BUNDLE_CONTENT_TYPE = 'application/x-tar'

/** A peer's answer to a bundle: the entries it stored, the ones it did not and why. */
export interface BundleResult {
  stored: string[]
  rejected: Array<{path: string; reason: string}>
  /** What the peers this bundle was forwarded to stored, or why they did not. */
  chain?: BundleLink[]
}

export type BundleLink = ({node: string} & Omit<BundleResult, 'chain'>) | {node: string; error: string}

/** Splits artifacts (each no larger than BUNDLE_FILE_LIMIT) into bundles of about BUNDLE_TARGET_BYTES. */
export function groupIntoBundles<T extends {size: number}>(artifacts: T[], targetBytes = BUNDLE_TARGET_BYTES): T[][] {
  const bundles: T[][] = []
  let current: T[] = []
  let bytes = 0
  for (const artifact of artifacts) {
    if (current.length > 0 && bytes + artifact.size > targetBytes) {
      bundles.push(current)
      current = []
      bytes = 0
    }
    current.push(artifact)
    bytes += artifact.size
  }
  if (current.length > 0) bundles.push(current)
  return bundles
}

/**
 * The sending side of one bundle: a tar stream that entries are added to one at a time. add()
 * resolves once the stream has taken the entry (back-pressure: it waits while the request
 * drains); after abort() every add() rejects, so a peer that went away stops the feeding.
 */
export class BundleWriter {
  // Room for a few entries ahead of the socket: the reads need not wait for every drain.
  private readonly pack = tar.pack({highWaterMark: 4 << 20})

  get stream(): NodeJS.ReadableStream {
    return this.pack as unknown as NodeJS.ReadableStream
  }

  add(name: string, data: Buffer): Promise<void> {
    if (this.pack.destroying) return Promise.reject(new Error('the bundle was aborted'))
    return new Promise((resolve, reject) => {
      const entry = this.pack.entry({name, size: data.length, mode: 0o644}, data, (error) => (error ? reject(error) : resolve()))
      // An aborted pack destroys its entry, which (streamx) emits the error the callback already gets.
      entry.on('error', () => {})
    })
  }

  finish(): void {
    this.pack.finalize()
  }

  abort(error: Error): void {
    this.pack.destroy(error)
  }
}

export interface BundleEntry {
  /** The entry's name: the artifact path it claims to be (not yet checked). */
  name: string
  size: number
  /** The entry's bytes, in the order they arrived. */
  chunks: Buffer[]
}

/**
 * The entries of a bundle, one at a time, each read whole (entries larger than `fileLimit` are
 * refused before they are read). Throws `BundleError` for anything that is not a bundle.
 */
export async function* readBundle(body: Readable, fileLimit = BUNDLE_FILE_LIMIT): AsyncGenerator<BundleEntry> {
  const extract = tar.extract({highWaterMark: 4 << 20})
  body.on('error', (error) => extract.destroy(error))
  // A peer that goes away mid-bundle: the request closes before its end.
  body.on('close', () => {
    if (!body.readableEnded) extract.destroy(new Error('the connection closed before the end of the bundle'))
  })
  body.pipe(extract as unknown as NodeJS.WritableStream)
  try {
    for await (const entry of extract) {
      const {name, size, type} = entry.header
      if (type !== 'file') throw new BundleError(`bundle entry ${JSON.stringify(name)} is a ${type}, not a file`)
      if (size > fileLimit) throw new BundleError(`bundle entry ${JSON.stringify(name)} has ${size} bytes; entries over ${fileLimit} bytes must be sent alone`)
      const chunks: Buffer[] = []
      for await (const chunk of entry) chunks.push(chunk as Buffer)
      yield {name, size, chunks}
    }
  } catch (error) {
    if (error instanceof BundleError) throw error
    throw new BundleError(`the bundle is not a complete tar stream (${(error as Error).message})`)
  } finally {
    body.unpipe(extract as unknown as NodeJS.WritableStream)
    extract.destroy()
  }
}

export class BundleError extends Error {
  override name = 'BundleError'
}
