/**
 * The receiving end of fan-out, on every node: artifact copies arrive here from peers, are
 * checked while they stream against the wire hash in their `artifacts` row (xxHash3-128, see
 * src/media/wire-hash.ts; sha256 for a row made before it had one), become visible by rename
 * (the media route never serves dot-names, so a half-written copy is never served), and are
 * recorded as replicas. Large artifacts come one per request and resume from where a cut left them; small
 * ones come in bundles (replica-bundle.ts).
 */
import {once} from 'node:events'
import {closeSync, createReadStream, mkdirSync, openSync, renameSync, writeSync, writevSync} from 'node:fs'
import {mkdir, readFile, rename, stat, truncate, unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {BadRequest, Conflict, NotFound} from '../errors.js'
import type {ArtifactRecord} from '../db/entities/artifact.js'
import {artifactSegments, uploadMediaDir} from '../media/artifact-files.js'
import {copyChecker, type CopyCheck} from '../media/wire-hash.js'
import {BundleError, readBundle, type BundleResult} from './replica-bundle.js'
import {GrowingFile, PartialFileWriter, type ChainForwarder, type ChainLink} from './replica-chain.js'
import type {ReplicaRepository} from './replica-repository.js'

/** What this node holds of an artifact: a verified copy, or `offset` bytes of an interrupted one. */
export interface ReplicaState {
  verifiedSha256?: string
  offset: number
}

/** `chain`: what became of each peer this copy was forwarded to (replica-chain.ts). */
export type CopyResult = {complete: true; chain: ChainLink[]} | {complete: false; offset: number}

/** Rows of a bundle's placed entries are written in batches of this many (one statement each). */
const RECORD_EVERY = 64

export class ReplicaReceiver {
  /** Per partial file, the end of the last copy or probe queued for it. */
  private readonly partialsInUse = new Map<string, Promise<void>>()

  constructor(
    private readonly replicas: ReplicaRepository,
    private readonly dataDir: string,
    private readonly selfId: string,
    private readonly forwarder?: ChainForwarder
  ) {}

  async artifact(uploadId: string, relative: string): Promise<ArtifactRecord> {
    const artifact = await this.replicas.artifacts.find(uploadId, relative)
    if (!artifact) throw new NotFound('no such artifact')
    return artifact
  }

  async state(artifact: ArtifactRecord): Promise<ReplicaState> {
    const {target, partial} = this.paths(artifact)
    // After any copy still being written (a cut one flushing its last buffered bytes, say).
    return this.onePartialAtATime(partial, async () => {
      const holders = await this.replicas.holders(artifact)
      const verified = holders.includes(this.selfId) && (await sizeOf(target)) === artifact.size
      return {verifiedSha256: verified ? artifact.sha256 : undefined, offset: (await sizeOf(partial)) ?? 0}
    })
  }

  /**
   * One artifact's bytes from `offset` on, hashed as they land on disk, never re-read: a cut
   * copy keeps its hash's state beside its partial (`.hash`), and its resumption goes on from
   * there (only without one, a sha256 check or a state that does not match the partial, does it
   * re-read what it already had). `chain`: peers to forward the copy to while it arrives; the
   * answer waits for them.
   */
  async receive(artifact: ArtifactRecord, claimed: {sha256: string; xxh128?: string; size: number; offset: number}, body: Readable, chain: string[] = []): Promise<CopyResult> {
    const wireChanged = claimed.xxh128 !== undefined && artifact.xxh128 !== null && claimed.xxh128 !== artifact.xxh128
    if (claimed.sha256 !== artifact.sha256 || claimed.size !== artifact.size || wireChanged) throw new Conflict('this artifact has changed since the copy started; start again')
    return this.onePartialAtATime(this.paths(artifact).partial, () => this.append(artifact, claimed.offset, body, chain))
  }

  private async append(artifact: ArtifactRecord, offset: number, body: Readable, chain: string[]): Promise<CopyResult> {
    const {dir, target, partial} = this.paths(artifact)
    await mkdir(dir, {recursive: true})
    const have = (await sizeOf(partial)) ?? 0
    if (offset !== have) throw new Conflict(`this node holds ${have} bytes of the copy, not ${offset}`, {'Upload-Offset': String(have)})
    const check = (await copyChecker())(artifact)
    const hashState = `${partial}.hash`
    if (have > 0 && !(await resumeCheck(check, hashState, have))) {
      for await (const chunk of createReadStream(partial, {highWaterMark: 1 << 20})) check.update(chunk as Buffer)
    }
    // Used or stale: a new one is kept if this copy is cut too.
    await unlink(hashState).catch(() => {})
    let received = have
    const limit = new Transform({
      transform(chunk: Buffer, _enc, done) {
        if (received + chunk.length > artifact.size) return done(new BadRequest('the copy is longer than the artifact'))
        received += chunk.length
        done(null, chunk)
      },
    })
    // The file stream has one write in flight at a time; 8 MiB of buffer lets it gather the
    // socket's 64 KiB chunks into large writevs (measured: a 1 GiB copy to two peers ~25 % faster
    // than with 1 MiB; more did not help).
    const file = new PartialFileWriter(partial, {flags: have > 0 ? 'r+' : 'w', start: have, highWaterMark: 8 << 20})
    file.landed = (chunk) => check.update(chunk)
    const forwarding = chain.length > 0 && this.forwarder ? await this.forwardWhileWriting(artifact, chain, file, partial, have) : undefined
    try {
      try {
        await pipeline(body, limit, file)
      } finally {
        // A cut copy: the write in flight still lands; the partial's size means something once it
        // has (its 'close' comes after its 'error', which the pipeline has already reported).
        if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()))
        forwarding?.file.end()
        const hashed = have + file.bytesWritten
        if (hashed < artifact.size) await keepCheck(check, partial, hashed)
      }
      if (received < artifact.size) return {complete: false, offset: received}
      if (!check.matches()) {
        await unlink(partial).catch(() => {})
        throw new BadRequest(`the copy does not match the artifact's ${check.algorithm}; it was discarded`)
      }
      await rename(partial, target)
      await this.replicas.record(artifact, this.selfId)
      return {complete: true, chain: forwarding ? await forwarding.links : []}
    } finally {
      // The next peers read this node's partial as it grows: they are waited for above, or let go here.
      forwarding?.stop()
      await forwarding?.links.catch(() => {})
      await forwarding?.file.close()
    }
  }

  /** Starts sending the partial file on along `chain` as `file` writes it. */
  private async forwardWhileWriting(artifact: ArtifactRecord, chain: string[], file: PartialFileWriter, partial: string, have: number) {
    await once(file, 'ready')
    const growing = await GrowingFile.open(partial, () => have + file.bytesWritten, artifact.size)
    const check = file.landed
    file.landed = (chunk) => {
      check(chunk)
      growing.kept(chunk)
    }
    file.on('written', () => growing.grew())
    const abort = new AbortController()
    const links = this.forwarder!.forward(artifact, chain, growing, abort.signal)
    links.catch(() => {}) // awaited by append; never an unhandled rejection meanwhile
    return {file: growing, links, stop: () => abort.abort()}
  }

  /**
   * A bundle of an upload's small artifacts. Each entry is checked against its row and placed
   * on its own; the ones placed are recorded a batch at a time (RECORD_EVERY), and the rest
   * when the bundle ends, breaks off or turns out malformed half-way: a copy already verified
   * is not sent again, and a node killed mid-bundle loses at most one batch of rows.
   */
  async receiveBundle(uploadId: string, body: Readable, chain: string[] = []): Promise<BundleResult> {
    const artifacts = new Map((await this.replicas.artifacts.list(uploadId)).map((a) => [a.path, a]))
    if (artifacts.size === 0) throw new NotFound('this upload has no artifacts')
    // Forwarded as it arrives, the bytes as they came: each peer checks every entry itself.
    const forwarded = chain.length > 0 && this.forwarder ? this.forwarder.forwardBundle(uploadId, chain, body) : undefined
    const links = forwarded?.links
    if (forwarded) body = forwarded.local
    const placed: ArtifactRecord[] = []
    let recorded = 0
    const record = async () => {
      const batch = placed.slice(recorded)
      recorded = placed.length
      if (batch.length > 0) await this.replicas.recordMany(batch, this.selfId)
    }
    const rejected: BundleResult['rejected'] = []
    const dirs = new Set<string>()
    const checkCopyOf = await copyChecker()
    try {
      for await (const entry of readBundle(body)) {
        const artifact = artifacts.get(artifactSegments(entry.name).join('/'))
        if (!artifact) throw new Conflict(`${entry.name} is not an artifact of upload ${uploadId}`)
        if (entry.size !== artifact.size) throw new Conflict(`${entry.name} has ${entry.size} bytes in the bundle but ${artifact.size} in its row; it has changed, start again`)
        const check = checkCopyOf(artifact)
        for (const chunk of entry.chunks) check.update(chunk)
        if (!check.matches()) {
          rejected.push({path: artifact.path, reason: `does not match the artifact's ${check.algorithm}; discarded`})
          continue
        }
        try {
          this.place(artifact, entry.chunks, dirs)
          placed.push(artifact)
        } catch (error) {
          rejected.push({path: artifact.path, reason: `could not be written: ${(error as Error).message}`})
        }
        if (placed.length - recorded >= RECORD_EVERY) await record()
      }
    } catch (error) {
      forwarded?.abort()
      if (error instanceof BundleError) throw new BadRequest(error.message)
      throw error
    } finally {
      await record()
    }
    return {stored: placed.map((a) => a.path), rejected, ...(links ? {chain: await links} : {})}
  }

  /**
   * Writes a verified entry under its dot-name partial path, then renames it into place.
   * Synchronously, on purpose: an entry is at most BUNDLE_FILE_LIMIT (a segment is typically
   * a few hundred KB, written to the page cache in well under a millisecond), and four thread
   * pool round trips per file cost more CPU than the writes themselves (measured: 2-3x, with
   * hundreds of files per bundle).
   */
  private place(artifact: ArtifactRecord, chunks: Buffer[], dirs: Set<string>): void {
    const {dir, target, partial} = this.paths(artifact)
    if (!dirs.has(dir)) {
      mkdirSync(dir, {recursive: true})
      dirs.add(dir)
    }
    const fd = openSync(partial, 'w')
    try {
      let written = writevSync(fd, chunks)
      if (written < artifact.size) {
        // writev may stop short: finish with plain writes (a full disk throws here).
        const rest = Buffer.concat(chunks).subarray(written)
        for (let done = 0; done < rest.length; ) done += writeSync(fd, rest, done)
      }
    } finally {
      closeSync(fd)
    }
    renameSync(partial, target)
  }

  /**
   * Runs `work` once every earlier one for the same partial file has ended: a probe sees the
   * partial's final size, and two copies of one artifact never write it at once.
   */
  private async onePartialAtATime<T>(partial: string, work: () => Promise<T>): Promise<T> {
    const before = this.partialsInUse.get(partial) ?? Promise.resolve()
    const current = before.then(work)
    const done = current.then(
      () => {},
      () => {}
    )
    this.partialsInUse.set(partial, done)
    try {
      return await current
    } finally {
      if (this.partialsInUse.get(partial) === done) this.partialsInUse.delete(partial)
    }
  }

  private paths(artifact: ArtifactRecord) {
    const segments = artifactSegments(artifact.path)
    const dir = path.join(uploadMediaDir(this.dataDir, artifact.uploadId), ...segments.slice(0, -1))
    const name = segments[segments.length - 1]!
    return {dir, target: path.join(dir, name), partial: path.join(dir, `.replica-${name}.part`)}
  }
}

/** Goes on from the state a cut copy kept (8 bytes of offset, then the state) when it is of the `have` bytes on disk. */
async function resumeCheck(check: CopyCheck, hashState: string, have: number): Promise<boolean> {
  const kept = await readFile(hashState).catch(() => undefined)
  if (!kept || kept.length <= 8 || Number(kept.readBigUInt64BE(0)) !== have) return false
  return check.resume(kept.subarray(8))
}

/**
 * Keeps a cut copy's hash state of its first `hashed` bytes beside its partial, cut to them: a
 * write that landed as the copy was cut is not counted by the stream (so not hashed), and is
 * sent again. A check without a state (sha256) keeps nothing, and the partial as it is.
 */
async function keepCheck(check: CopyCheck, partial: string, hashed: number): Promise<void> {
  const state = check.save()
  if (!state || hashed === 0) return
  const head = Buffer.alloc(8)
  head.writeBigUInt64BE(BigInt(hashed))
  try {
    await truncate(partial, hashed)
    await writeFile(`${partial}.hash`, Buffer.concat([head, state]))
  } catch {
    // Without its state, the resumption re-reads the partial.
  }
}

async function sizeOf(file: string): Promise<number | undefined> {
  return (await stat(file).catch(() => undefined))?.size
}
