/**
 * Rules of the tus 1.0.0 protocol text that @tus/server does not follow to the letter, checked
 * before a request reaches it, plus X-HTTP-Method-Override (clients on platforms without PATCH
 * send POST and name the real method in that header). Each answer is the status the protocol
 * names, with a plain-text reason.
 */
import {TUS_RESUMABLE, TUS_VERSION} from '@tus/utils'
import type {Context} from 'koa'

export const TUS_EXTENSIONS = ['creation', 'creation-with-upload', 'creation-defer-length', 'termination', 'expiration']

const OVERRIDABLE = new Set(['PATCH', 'DELETE', 'HEAD', 'GET', 'OPTIONS', 'POST'])

export interface ProtocolViolation {
  status: number
  message: string
  headers?: Record<string, string>
}

/** Applies X-HTTP-Method-Override (only on POST, the only method it is meant to tunnel). */
export function applyMethodOverride(ctx: Context): ProtocolViolation | undefined {
  const override = ctx.get('x-http-method-override')
  if (!override || ctx.method !== 'POST') return
  const method = override.trim().toUpperCase()
  if (!OVERRIDABLE.has(method)) {
    return {status: 400, message: `X-HTTP-Method-Override names an unsupported method: ${override.slice(0, 32)}`}
  }
  ctx.req.method = method
  ctx.method = method
}

export function checkTusRequest(ctx: Context): ProtocolViolation | undefined {
  if (ctx.method === 'OPTIONS' || ctx.method === 'GET') return
  const version = ctx.get('tus-resumable')
  if (version !== TUS_RESUMABLE) {
    // The protocol: 412 Precondition Failed with Tus-Version, and the request not processed.
    return {
      status: 412,
      message: version ? `Tus-Resumable ${version.slice(0, 32)} is not supported; this server speaks ${TUS_VERSION.join(', ')}` : 'Tus-Resumable header required',
      headers: {'Tus-Version': TUS_VERSION.join(',')},
    }
  }
  if (ctx.method === 'PATCH') {
    const contentType = ctx.get('content-type').trim().toLowerCase()
    if (contentType !== 'application/offset+octet-stream') {
      return {status: 415, message: 'PATCH requests must use Content-Type: application/offset+octet-stream'}
    }
    if (!ctx.get('upload-offset')) {
      return {status: 400, message: 'Upload-Offset header required'}
    }
  }
}
