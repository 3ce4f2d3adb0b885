/**
 * The tus checksum extension: `Upload-Checksum: <algorithm> <base64 digest>` on an append
 * (as a header, or as a trailer of a chunked request). The digest of the request's bytes is
 * computed in the same pass that writes and hashes them (see HashingFileSink).
 */
import {createHash, timingSafeEqual, type Hash} from 'node:crypto'
import {BadRequest, ChecksumMismatch} from '../errors.js'
import type {ChunkObserver} from './hashing-file-sink.js'

/** Algorithm names as tus clients send them, with their digest sizes in bytes. */
export const CHECKSUM_ALGORITHMS = {sha1: 20, md5: 16, sha256: 32, sha512: 64} as const
export type ChecksumAlgorithm = keyof typeof CHECKSUM_ALGORITHMS

export interface Checksum {
  algorithm: ChecksumAlgorithm
  digest: Buffer
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

/**
 * Parses an Upload-Checksum value. A malformed one or an unknown algorithm is a 400; a
 * well-formed base64 digest of the wrong size for its algorithm can never match: 460.
 */
export function parseUploadChecksum(value: string): Checksum {
  const match = /^\s*(\S+) (\S+)\s*$/.exec(value)
  if (!match) throw new BadRequest('Upload-Checksum must be "<algorithm> <base64 digest>"')
  const algorithm = match[1]!.toLowerCase()
  if (!(algorithm in CHECKSUM_ALGORITHMS)) {
    throw new BadRequest(`checksum algorithm ${algorithm.slice(0, 32)} is not supported; use one of ${Object.keys(CHECKSUM_ALGORITHMS).join(', ')}`)
  }
  const encoded = match[2]!
  if (!BASE64.test(encoded)) throw new BadRequest('Upload-Checksum digest must be base64')
  const size = CHECKSUM_ALGORITHMS[algorithm as ChecksumAlgorithm]
  const digest = Buffer.from(encoded, 'base64')
  if (digest.length !== size) {
    throw new ChecksumMismatch(`Upload-Checksum is not a ${algorithm} digest (${size} bytes), so it cannot match the request body; nothing was stored`)
  }
  return {algorithm: algorithm as ChecksumAlgorithm, digest}
}

/**
 * Digests one request's bytes as they pass: with the algorithm the header named, or with every
 * supported one when the checksum only comes in a trailer, after the bytes.
 */
export class RequestDigest implements ChunkObserver {
  private readonly hashes: Map<ChecksumAlgorithm, Hash>
  private readonly results = new Map<ChecksumAlgorithm, Buffer>()

  constructor(algorithms: readonly ChecksumAlgorithm[] = Object.keys(CHECKSUM_ALGORITHMS) as ChecksumAlgorithm[]) {
    this.hashes = new Map(algorithms.map((a) => [a, createHash(a)]))
  }

  update(chunk: Uint8Array): void {
    for (const hash of this.hashes.values()) hash.update(chunk)
  }

  /** The digest with `algorithm`, finished on the first call; undefined when it was not taken. */
  digest(algorithm: ChecksumAlgorithm): Buffer | undefined {
    let result = this.results.get(algorithm)
    if (!result) {
      result = this.hashes.get(algorithm)?.digest()
      if (result) this.results.set(algorithm, result)
    }
    return result
  }

  matches(expected: Checksum): boolean {
    const actual = this.digest(expected.algorithm)
    return actual !== undefined && actual.length === expected.digest.length && timingSafeEqual(actual, expected.digest)
  }
}
