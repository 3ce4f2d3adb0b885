/**
 * The HTTP side of tus concatenation, which @tus/server does not implement: `Upload-Concat`
 * on creation, and HEAD/PATCH/DELETE on final uploads (whose bytes are assembled by
 * UploadConcatenation rather than appended). Partial uploads otherwise go through @tus/server
 * like any upload.
 */
import {unlink} from 'node:fs/promises'
import {Metadata} from '@tus/utils'
import type {Context} from 'koa'
import type {UploadRecord} from '../db/entities/upload.js'
import {BadRequest, Forbidden, Gone} from '../errors.js'
import type {RequestContext} from '../request-context.js'
import {callerOf} from '../uploads/caller-limits.js'
import {PARTIAL} from '../uploads/concat-role.js'
import type {UploadConcatenation} from '../uploads/concatenation.js'
import {decodeMetadata} from '../uploads/metadata.js'
import type {UploadRepository} from '../uploads/upload-repository.js'
import {isGone, UploadStatus} from '../uploads/upload-status.js'
import type {UploadStore} from '../uploads/upload-store.js'

const UPLOAD_PATH = /^\/files\/([A-Za-z0-9_-]{1,128})\/?$/

export type UploadConcat = {kind: 'partial'} | {kind: 'final'; partIds: string[]}

/** Parses Upload-Concat: `partial`, or `final;` and the partial uploads' URLs (absolute or relative). */
export function parseUploadConcat(value: string, base: string): UploadConcat {
  const trimmed = value.trim()
  if (trimmed === PARTIAL) return {kind: 'partial'}
  if (!trimmed.startsWith('final;')) throw new BadRequest('Upload-Concat must be "partial" or "final;<url> <url>…"')
  const urls = trimmed.slice('final;'.length).trim().split(/ +/).filter(Boolean)
  if (urls.length === 0) throw new BadRequest('Upload-Concat: final needs at least one partial upload URL')
  if (urls.length > 1000) throw new BadRequest('Upload-Concat: final lists too many partial uploads (at most 1000)')
  const partIds = urls.map((url) => {
    let path: string
    try {
      path = new URL(url, base).pathname
    } catch {
      throw new BadRequest(`Upload-Concat: ${url.slice(0, 100)} is not a URL`)
    }
    const id = UPLOAD_PATH.exec(path)?.[1]
    if (!id) throw new BadRequest(`Upload-Concat: ${url.slice(0, 100)} is not an upload URL of this server`)
    return id
  })
  return {kind: 'final', partIds}
}

export interface ConcatDeps {
  concatenation: UploadConcatenation
  uploads: UploadRepository
  store: UploadStore
  uploadUrl: (ctx: Context, id: string) => string
}

/** Creates a final upload (POST with Upload-Concat: final;…). */
export async function createFinalUpload(ctx: Context, context: RequestContext, partIds: string[], deps: ConcatDeps): Promise<void> {
  if (ctx.get('upload-length') || ctx.get('upload-defer-length')) {
    throw new BadRequest('a final upload takes its length from its partial uploads: send no Upload-Length')
  }
  let metadata: Record<string, string | null> | undefined
  const header = ctx.get('upload-metadata')
  if (header) {
    try {
      metadata = Metadata.parse(header)
    } catch {
      throw new BadRequest('Upload-Metadata is invalid: comma-separated "key base64value" pairs with unique keys')
    }
  }
  const row = await deps.concatenation.createFinal({header: ctx.get('upload-concat').trim(), partIds, metadata, owner: context.subject, caller: callerOf(context)})
  ctx.body = null // before the status: koa turns an empty body into a 204 otherwise
  ctx.status = 201
  ctx.set({'Tus-Resumable': '1.0.0', Location: deps.uploadUrl(ctx, row.id), 'Upload-Concat': row.uploadConcat!})
}

/** HEAD, PATCH and DELETE on a final upload. */
export async function handleFinalUpload(ctx: Context, row: UploadRecord, deps: ConcatDeps): Promise<void> {
  if (isGone(row.status)) throw new Gone(`upload ${row.id} has been terminated`)
  ctx.set({'Tus-Resumable': '1.0.0', 'Cache-Control': 'no-store'})
  switch (ctx.method) {
    case 'HEAD': {
      ctx.set('Upload-Concat', row.uploadConcat!)
      // Upload-Offset grows with the partials (see docs/protocol.md) and equals Upload-Length
      // once they have all finished.
      const {offset, length} = await deps.concatenation.progressOf(row)
      ctx.set('Upload-Offset', String(offset))
      if (length !== null) ctx.set('Upload-Length', String(length))
      const metadata = decodeMetadata(row.metadata)
      if (Object.keys(metadata).length > 0) ctx.set('Upload-Metadata', Metadata.stringify(metadata))
      ctx.body = null
      ctx.status = 200
      return
    }
    case 'PATCH':
      throw new Forbidden('a final upload is assembled from its partial uploads and cannot be appended to')
    case 'DELETE':
      await deps.uploads.markGone(row.id, UploadStatus.Terminated)
      await unlink(deps.store.filePath(row.id)).catch(() => {})
      ctx.body = null
      ctx.status = 204
      return
  }
}
