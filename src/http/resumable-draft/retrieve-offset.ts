/**
 * Offset retrieval: HEAD on the upload's URL. Taken under the upload's lock, so a request still
 * appending is asked to stop first and the offset we give is one the next append will accept.
 */
import type {DraftRequest} from './draft-request.js'
import {findOwnUpload, isComplete, withUploadLock} from './upload-access.js'

export async function retrieveOffset(draft: DraftRequest, id: string): Promise<void> {
  const {ctx, deps} = draft
  await findOwnUpload(deps.uploads, id)
  const state = await withUploadLock(deps.locker, id, ctx.res, async () => {
    const upload = await deps.store.getUpload(id)
    const row = await findOwnUpload(deps.uploads, id)
    return {offset: upload.offset, complete: isComplete(row.status), expiresAt: row.expiresAt, ...(upload.size !== undefined ? {length: upload.size} : {})}
  })
  // -01 and -02 require 204; later drafts allow 200 as well.
  draft.answer(204, draft.stateHeaders(state))
}
