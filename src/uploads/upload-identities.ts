/**
 * What never changes about an upload once it exists: who owns it, which node holds its bytes,
 * its concatenation role. Every HEAD, PATCH and DELETE asks for it before taking the upload's
 * lock (the owner check, forwarding to the owner, the concatenation role); kept in memory, the
 * steady state of an upload costs no statement for it. Bounded: the least recently asked-for
 * uploads are forgotten first, and read again when asked for. A row that is gone (terminated,
 * expired) may still be remembered: what follows under the lock reads the row and answers 404.
 */
import type {UploadRecord} from '../db/entities/upload.js'

export type UploadIdentity = Readonly<Pick<UploadRecord, 'id' | 'owner' | 'nodeId' | 'uploadConcat'>>

/** Enough for tens of thousands of uploads in flight on one node (~200 bytes each). */
const DEFAULT_CAPACITY = 50_000

export class UploadIdentities {
  private readonly known = new Map<string, UploadIdentity>()

  constructor(
    private readonly load: (id: string) => Promise<UploadRecord | null>,
    private readonly capacity = DEFAULT_CAPACITY
  ) {}

  /** The upload's identity, from memory or its row; null when there is no such upload. */
  async of(id: string): Promise<UploadIdentity | null> {
    const known = this.known.get(id)
    if (known) {
      // Most recently asked for goes last: the first in the map is the one to forget.
      this.known.delete(id)
      this.known.set(id, known)
      return known
    }
    const row = await this.load(id)
    return row ? this.remember(row) : null
  }

  /** Called with every row read or written whole: its identity is known from now on. */
  remember(row: UploadRecord): UploadIdentity {
    const identity: UploadIdentity = {id: row.id, owner: row.owner, nodeId: row.nodeId, uploadConcat: row.uploadConcat}
    this.known.delete(row.id)
    this.known.set(row.id, identity)
    if (this.known.size > this.capacity) this.known.delete(this.known.keys().next().value!)
    return identity
  }
}
