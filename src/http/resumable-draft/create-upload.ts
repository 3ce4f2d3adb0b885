/**
 * Upload creation: POST (or PUT) on /files/ with Upload-Complete (Upload-Incomplete in -01).
 * The row is created first, its URL announced in a 104 interim response, then the content is
 * appended under the upload's lock. A 201 with Location answers, complete or not.
 */
import {Metadata, Uid, Upload} from '@tus/utils'
import {BadRequest, PayloadTooLarge} from '../../errors.js'
import {currentRequest} from '../../request-context.js'
import {describeUpload} from '../../uploads/metadata.js'
import {callerOf} from '../../uploads/caller-limits.js'
import type {DraftRequest} from './draft-request.js'
import {writeInterimResponse} from './informational.js'
import {dispositionFilename, indicatedLength, mediaType, parseCompleteness, parseSfInteger, PARTIAL_UPLOAD_TYPE} from './interop.js'
import {contentLengthOf, inconsistentLength, receiveContent, Supersession} from './receive-content.js'
import {withUploadLock} from './upload-access.js'

export async function createUpload(draft: DraftRequest): Promise<void> {
  const {ctx, deps, version} = draft
  const complete = parseCompleteness(version, (name) => draft.header(name))
  if (complete === undefined) throw new BadRequest(`${draft.rules.completenessField} (?0 or ?1) is required to create a resumable upload`)
  const offset = parseSfInteger(draft.header('upload-offset'))
  if (offset !== undefined && offset !== 0) throw new BadRequest('a new upload starts at offset 0')

  const length = indicatedLength({uploadLength: parseSfInteger(draft.header('upload-length')), complete, contentLength: contentLengthOf(draft), offset: 0})
  if (length === 'inconsistent') throw inconsistentLength('Upload-Length does not match the length of the complete content')
  const maxSize = deps.config.maxUploadSize
  if (length !== undefined && maxSize > 0 && length > maxSize) throw new PayloadTooLarge(`the upload is larger than this server accepts (${maxSize} bytes)`, draft.uploadLimit())

  const context = currentRequest()
  if (context) await deps.limits?.admitCreation(callerOf(context))
  const id = Uid.rand()
  await deps.store.create(new Upload({id, offset: 0, metadata: metadataOf(draft), ...(length !== undefined ? {size: length} : {})}))
  const location = draft.uploadUrl(id)
  currentRequest()?.log.info({uploadId: id, interopVersion: version}, 'resumable upload created (IETF draft)')

  const supersession = new Supersession()
  const received = await withUploadLock(
    deps.locker,
    id,
    ctx.res,
    async () => {
      writeInterimResponse(ctx.req, ctx.res, 104, 'Upload Resumption Supported', {
        'Upload-Draft-Interop-Version': String(version),
        Location: location,
        ...draft.uploadLimit(),
      })
      return receiveContent(draft, {id, offset: 0, ...(length !== undefined ? {length} : {})}, complete, supersession)
    },
    supersession.request
  )
  if (received.end !== 'complete') return draft.abandon()
  draft.answer(201, {Location: location, ...draft.stateHeaders(received)})
}

/**
 * What we keep about the representation: tus-style Upload-Metadata (tus-js-client sends it in
 * IETF mode too), else the draft's Content-Type and Content-Disposition filename.
 */
function metadataOf(draft: DraftRequest): Record<string, string | null> {
  let metadata: Record<string, string | null> = {}
  const raw = draft.header('upload-metadata')
  try {
    if (raw !== undefined) metadata = Metadata.parse(raw)
  } catch {
    throw new BadRequest('Upload-Metadata is malformed')
  }
  const known = describeUpload(metadata)
  const type = mediaType(draft.header('content-type'))
  if (!known.filetype && type && type !== PARTIAL_UPLOAD_TYPE && type !== 'application/offset+octet-stream') metadata.filetype = type
  const filename = dispositionFilename(draft.header('content-disposition'))
  if (!known.filename && filename) metadata.filename = filename
  return metadata
}
