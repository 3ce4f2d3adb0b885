/**
 * How a draft request reaches an existing upload: the same owner rule as the tus endpoint
 * (someone else's upload answers exactly as a missing one), and the same shared lock, so tus
 * and draft requests on one upload are serialised together. A newer request asks the holder to
 * let go (MemoryLocker calls its requestRelease), which is what the draft recommends.
 */
import {ERRORS, type Lock, type Locker} from '@tus/utils'
import type {ServerResponse} from 'node:http'
import {NotFound} from '../../errors.js'
import {currentRequest} from '../../request-context.js'
import type {UploadRepository} from '../../uploads/upload-repository.js'
import type {UploadRecord} from '../../db/entities/upload.js'
import {UploadStatus} from '../../uploads/upload-status.js'
import {DraftError} from './draft-error.js'

export async function findOwnUpload(uploads: UploadRepository, id: string): Promise<UploadRecord> {
  const row = await uploads.findById(id)
  const caller = currentRequest()?.subject ?? null
  if (!row || row.owner !== caller) throw new NotFound('no upload at this URL')
  return row
}

/** Completed, or further along the pipeline: the client has nothing more to send. */
export function isComplete(status: UploadStatus): boolean {
  return status !== UploadStatus.Uploading
}

/**
 * Runs `work` holding the upload's lock. `onRelease` is called when another request wants the
 * lock; the holder must then finish promptly. Waiting ends if the client goes away.
 */
export async function withUploadLock<T>(locker: Locker, id: string, res: ServerResponse, work: () => Promise<T>, onRelease: () => void = () => {}): Promise<T> {
  const lock: Lock = locker.newLock(id)
  const gone = new AbortController()
  const onClose = () => gone.abort()
  res.once('close', onClose)
  try {
    await lock.lock(gone.signal, onRelease)
  } catch (error) {
    if (error === ERRORS.ERR_LOCK_TIMEOUT) throw new DraftError(423, 'another request is using this upload; retry after it ends')
    throw error
  } finally {
    res.off('close', onClose)
  }
  try {
    return await work()
  } finally {
    await lock.unlock()
  }
}
