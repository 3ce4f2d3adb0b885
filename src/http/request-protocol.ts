/**
 * Which protocol a request speaks, decided once from its path and headers: the IETF resumable
 * upload draft (an Upload-Draft-Interop-Version on /files or /files/<id>), tus (anything else on
 * /files), or our own API (every other path). The draft endpoint takes the requests this names
 * as its own, and an error is answered in the protocol's format (error-answer.ts).
 */
import type {Context} from 'koa'
import {parseInteropVersion, type InteropVersion} from './resumable-draft/interop.js'
import {TUS_PATH} from './tus-protocol.js'

/** `version: null`: a draft request naming a version this server does not speak. */
export type RequestProtocol = {kind: 'api'} | {kind: 'tus'} | {kind: 'draft'; version: InteropVersion | null}

const DRAFT_PATH = new RegExp(`^${TUS_PATH}(/|/[A-Za-z0-9_-]{1,128})?$`)

export function requestProtocol(ctx: Pick<Context, 'path' | 'get'>): RequestProtocol {
  if (ctx.path !== TUS_PATH && !ctx.path.startsWith(`${TUS_PATH}/`)) return {kind: 'api'}
  const version = DRAFT_PATH.test(ctx.path) ? parseInteropVersion(ctx.get('upload-draft-interop-version')) : 'absent'
  if (version === 'absent') return {kind: 'tus'}
  // A tus client with a stray header is still a tus client.
  if (version === 'unsupported') return ctx.get('tus-resumable') ? {kind: 'tus'} : {kind: 'draft', version: null}
  return {kind: 'draft', version}
}
