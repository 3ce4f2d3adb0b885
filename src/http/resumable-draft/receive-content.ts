/**
 * Appending a request's content to an upload, shared by creation and append: bounded by the
 * upload's length (or the node's maximum while the length is unknown), stoppable by a newer
 * request, and, when the client marked the upload complete and all its content arrived, the
 * length declared if it was unknown and the upload completed (row and outbox event, once).
 */
import type {RequestBody} from './request-body.js'
import {RequestBody as Body, type BodyEnd} from './request-body.js'
import {DraftError} from './draft-error.js'
import type {DraftRequest} from './draft-request.js'
import {writeInterimResponse} from './informational.js'

export interface Received {
  offset: number
  length?: number
  complete: boolean
  end: BodyEnd
}

/** Lets the lock's release request reach the body being read, whenever it starts. */
export class Supersession {
  private body: RequestBody | undefined
  private requested = false
  watch(body: RequestBody): void {
    this.body = body
    if (this.requested) body.supersede()
  }
  request = (): void => {
    this.requested = true
    this.body?.supersede()
  }
}

export async function receiveContent(
  draft: DraftRequest,
  upload: {id: string; offset: number; length?: number},
  markedComplete: boolean,
  supersession: Supersession
): Promise<Received> {
  const {ctx, deps} = draft
  const maxSize = deps.config.maxUploadSize
  const room = upload.length !== undefined ? upload.length - upload.offset : maxSize > 0 ? maxSize - upload.offset : Infinity
  const tooLarge = () =>
    upload.length !== undefined
      ? inconsistentLength(`the content goes past the upload's length (${upload.length} bytes)`)
      : new DraftError(413, `the upload is larger than this server accepts (${maxSize} bytes)`, undefined, draft.uploadLimit())
  const contentLength = contentLengthOf(draft)
  if (contentLength !== undefined && contentLength > room) throw tooLarge()

  let offset = upload.offset
  let end: BodyEnd = 'complete'
  if (contentLength !== 0) {
    const body = new Body(ctx.req, room, tooLarge)
    supersession.watch(body)
    const progress = draft.rules.progressInterims ? new ProgressInterims(draft, upload.offset) : undefined
    try {
      offset = await deps.store.write(body, upload.id, upload.offset, progress ? [progress] : [])
    } finally {
      progress?.stop()
    }
    end = body.outcome
  }

  let length = upload.length
  if (!markedComplete || end !== 'complete') return {offset, ...(length !== undefined ? {length} : {}), complete: false, end}
  if (length === undefined) {
    await deps.store.declareUploadLength(upload.id, offset)
    length = offset
  }
  if (offset !== length) throw inconsistentLength(`the upload was marked complete at ${offset} bytes, but its length is ${length} bytes`, {'Upload-Offset': String(offset)})
  await deps.completion.complete(upload.id, length)
  return {offset, length, complete: true, end}
}

/**
 * While the content streams, a 104 about once a second with the offset on disk (interop 7+),
 * so a client can show progress and knows where to resume. Stopped before the final answer.
 */
class ProgressInterims {
  private offset: number
  private sent: number
  private readonly timer: NodeJS.Timeout

  constructor(draft: DraftRequest, start: number) {
    this.offset = this.sent = start
    this.timer = setInterval(() => {
      if (this.offset === this.sent) return
      this.sent = this.offset
      writeInterimResponse(draft.ctx.req, draft.ctx.res, 104, 'Upload Resumption Supported', {
        'Upload-Draft-Interop-Version': String(draft.version),
        'Upload-Offset': String(this.offset),
      })
    }, PROGRESS_INTERVAL_MS)
    this.timer.unref()
  }

  /** The offset each 104 reports is on disk: the sink writes what it gathered at least this often. */
  readonly maxLagMs = PROGRESS_INTERVAL_MS

  update(chunk: Uint8Array): void {
    this.offset += chunk.byteLength
  }

  stop(): void {
    clearInterval(this.timer)
  }
}

const PROGRESS_INTERVAL_MS = 1000

export function inconsistentLength(message: string, headers: Record<string, string> = {}): DraftError {
  return new DraftError(400, message, {type: 'inconsistentLength'}, headers)
}

/** Content-Length, when the request has one (a chunked request has none). */
export function contentLengthOf(draft: DraftRequest): number | undefined {
  if (draft.header('transfer-encoding') !== undefined) return undefined
  const value = draft.header('content-length')
  return value === undefined ? 0 : Number(value)
}
