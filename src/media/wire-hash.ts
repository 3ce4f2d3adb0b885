/**
 * The hash that verifies an artifact's copy as it crosses the wire between nodes: xxHash3-128
 * (hash-wasm's streaming XXHash128), taken once when the artifact is described and kept beside
 * its sha256 in the `artifacts` row. SHA-256 stays the artifact's identity (what replicas rows,
 * probes and ETags name); but every receiver hashes every byte it gets, and on shared cores
 * SHA-256 was the costliest step of a copy (measured on a 1 GiB file: read alone 0.3-0.45 s,
 * read + XXHash128 0.5-0.6 s, read + SHA-256 1.3 s). It guards against bytes damaged or cut in
 * transit, not against a forger: the requests are signed, and the expected value always comes
 * from the `artifacts` row, never from the sender. A row made before the column existed has no
 * wire hash: its copies are verified by sha256, as they always were.
 */
import {createHash} from 'node:crypto'
import {createXXHash128, type IHasher} from 'hash-wasm'

export type CopyHashAlgorithm = 'xxh3-128' | 'sha256'

/** What a copy is checked against: the artifact's row. */
export interface HashedArtifact {
  sha256: string
  xxh128: string | null
}

/** A running check of one copy's bytes, fed as they arrive. */
export interface CopyCheck {
  readonly algorithm: CopyHashAlgorithm
  update(chunk: Uint8Array): void
  /** Whether the bytes fed so far are the artifact's (call once, after the last byte). */
  matches(): boolean
  /** The running state, kept with a cut copy so its resumption need not re-read it (wire hash only). */
  save(): Uint8Array | undefined
  /** Goes on from a saved state; false when it cannot (sha256, or not a state save() made). */
  resume(state: Uint8Array): boolean
}

/** A fresh XXHash128 hasher (its WASM instance is reused across init()). */
export async function wireHasher(): Promise<IHasher> {
  const hasher = await createXXHash128()
  hasher.init()
  return hasher
}

/**
 * Checks for copies, one at a time, sharing one wire hasher (a bundle's hundreds of entries
 * need not each instantiate one): the artifact's wire hash when its row has one, else sha256.
 */
export async function copyChecker(): Promise<(artifact: HashedArtifact) => CopyCheck> {
  const wire = await wireHasher()
  return (artifact) => {
    if (artifact.xxh128) {
      const expected = artifact.xxh128
      wire.init()
      return {
        algorithm: 'xxh3-128',
        update: (chunk) => void wire.update(chunk),
        matches: () => wire.digest('hex') === expected,
        save: () => wire.save(),
        resume: (state) => {
          try {
            wire.load(state)
            return true
          } catch {
            return false
          }
        },
      }
    }
    const hash = createHash('sha256')
    return {algorithm: 'sha256', update: (chunk) => void hash.update(chunk), matches: () => hash.digest('hex') === artifact.sha256, save: () => undefined, resume: () => false}
  }
}
