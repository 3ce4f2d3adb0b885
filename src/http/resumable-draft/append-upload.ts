/**
 * Upload append: PATCH on the upload's URL with Upload-Offset and the completeness field
 * (application/partial-upload since -04). The offset must be the upload's own, else 409 with
 * the right one; a completed upload takes no more content.
 */
import {BadRequest, UnsupportedMediaType} from '../../errors.js'
import {DraftError} from './draft-error.js'
import type {DraftRequest} from './draft-request.js'
import {indicatedLength, mediaType, parseCompleteness, parseSfInteger, PARTIAL_UPLOAD_TYPE} from './interop.js'
import {contentLengthOf, inconsistentLength, receiveContent, Supersession} from './receive-content.js'
import {findOwnUpload, isComplete, withUploadLock} from './upload-access.js'

export async function appendToUpload(draft: DraftRequest, id: string): Promise<void> {
  const {ctx, deps, version, rules} = draft
  if (rules.appendNeedsPartialUploadType && mediaType(draft.header('content-type')) !== PARTIAL_UPLOAD_TYPE) {
    throw new UnsupportedMediaType(`appending needs Content-Type: ${PARTIAL_UPLOAD_TYPE}`, {'Accept-Patch': PARTIAL_UPLOAD_TYPE})
  }
  const offset = parseSfInteger(draft.header('upload-offset'))
  if (offset === undefined) throw new BadRequest('Upload-Offset (a non-negative integer) is required to append')
  const complete = parseCompleteness(version, (name) => draft.header(name)) ?? (rules.appendCompleteByDefault ? true : undefined)
  if (complete === undefined) throw new BadRequest(`${rules.completenessField} (?0 or ?1) is required to append`)
  await findOwnUpload(deps.uploads, id)

  const supersession = new Supersession()
  const received = await withUploadLock(
    deps.locker,
    id,
    ctx.res,
    async () => {
      const upload = await deps.store.getUpload(id)
      const row = await findOwnUpload(deps.uploads, id)
      if (isComplete(row.status)) throw completedUpload(draft, contentLengthOf(draft))
      if (offset !== upload.offset) {
        throw new DraftError(409, `Upload-Offset ${offset} does not match the upload's offset ${upload.offset}`, {
          type: 'mismatchingOffset',
          members: {'expected-offset': upload.offset, 'provided-offset': offset},
        }, draft.stateHeaders({offset: upload.offset, complete: false, ...(upload.size !== undefined ? {length: upload.size} : {}), expiresAt: row.expiresAt}))
      }
      const length = await settleLength(draft, id, upload.offset, upload.size, complete)
      return receiveContent(draft, {id, offset: upload.offset, ...(length !== undefined ? {length} : {})}, complete, supersession)
    },
    supersession.request
  )
  if (received.end !== 'complete') return draft.abandon()
  draft.answer(204, draft.stateHeaders(received))
}

/** The length this request indicates, checked against the one we know, declared if new. */
async function settleLength(draft: DraftRequest, id: string, offset: number, known: number | undefined, complete: boolean): Promise<number | undefined> {
  const indicated = indicatedLength({uploadLength: parseSfInteger(draft.header('upload-length')), complete, contentLength: contentLengthOf(draft), offset})
  if (indicated === 'inconsistent') throw inconsistentLength('Upload-Length does not match the length of the complete content')
  if (indicated === undefined) return known
  if (known !== undefined) {
    if (indicated !== known) throw inconsistentLength(`this request indicates a length of ${indicated} bytes, but the upload's length is ${known} bytes`)
    return known
  }
  if (indicated < offset) throw inconsistentLength(`the indicated length ${indicated} is less than the ${offset} bytes already received`)
  const maxSize = draft.deps.config.maxUploadSize
  if (maxSize > 0 && indicated > maxSize) throw new DraftError(413, `the upload is larger than this server accepts (${maxSize} bytes)`, undefined, draft.uploadLimit())
  await draft.deps.store.declareUploadLength(id, indicated)
  return indicated
}

function completedUpload(draft: DraftRequest, contentLength: number | undefined): DraftError {
  // -06 on: content for a completed upload is an inconsistent length; an empty append, completed-upload.
  if (contentLength !== 0 && draft.rules.problems.includes('inconsistentLength')) {
    return inconsistentLength('the upload is already complete: it takes no more content')
  }
  return new DraftError(400, 'the upload is already complete', {type: 'completedUpload'})
}
