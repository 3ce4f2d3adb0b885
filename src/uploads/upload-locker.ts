/**
 * The per-upload lock every write takes (tus, the IETF draft endpoint, creation-with-upload),
 * shared by the whole process: @tus/server's MemoryLocker, plus a lock for housekeeping that
 * never waits and never asks the holder to let go (MemoryLocker's lock() does both: a sweeper
 * using it would cut the very request that keeps an upload alive).
 */
import {MemoryLocker} from '@tus/server'
import type {Lock} from '@tus/utils'

export class UploadLocker extends MemoryLocker {
  /** The upload's lock if nobody holds it, else undefined (the holder is not disturbed). */
  tryLock(id: string): Lock | undefined {
    if (this.locks.has(id)) return undefined
    // A request that wants the lock meanwhile waits for unlock(); there is nothing to release early.
    this.locks.set(id, {requestRelease: () => {}})
    return this.newLock(id)
  }
}
