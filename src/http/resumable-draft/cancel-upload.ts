/**
 * Upload cancellation: DELETE on the upload's URL. Like tus termination: a request still
 * appending is asked to stop first, then the bytes go and the row stays as `terminated`, so the
 * URL answers 410 afterwards.
 */
import type {DraftRequest} from './draft-request.js'
import {findOwnUpload, withUploadLock} from './upload-access.js'

export async function cancelUpload(draft: DraftRequest, id: string): Promise<void> {
  const {ctx, deps} = draft
  await findOwnUpload(deps.uploads, id)
  await withUploadLock(deps.locker, id, ctx.res, async () => {
    await deps.store.getUpload(id)
    await deps.store.remove(id)
  })
  draft.answer(204, {})
}
