/**
 * One draft request as the handlers see it: the koa context, the interop version and its
 * rules, the dependencies, and the headers every answer carries (the interop version, the
 * upload's state in the version's own fields).
 */
import type {Locker} from '@tus/utils'
import type {Context} from 'koa'
import type {Config} from '../../config/index.js'
import {currentRequest} from '../../request-context.js'
import type {UploadCompletion} from '../../uploads/completion.js'
import type {UploadRepository} from '../../uploads/upload-repository.js'
import type {UploadStore} from '../../uploads/upload-store.js'
import type {CallerLimits} from '../../uploads/caller-limits.js'
import {TUS_PATH} from '../tus-protocol.js'
import {completenessHeader, formatUploadLimit, rulesOf, type InteropVersion, type VersionRules} from './interop.js'

export interface ResumableDraftDeps {
  config: Pick<Config, 'maxUploadSize' | 'publicUrl'>
  /** Serialises requests on one upload; the same locker the tus endpoint uses. */
  locker: Locker
  store: UploadStore
  uploads: UploadRepository
  completion: UploadCompletion
  /** Creations count against their caller's rate (in-flight quotas are checked by the insert). */
  limits?: CallerLimits
}

export interface UploadState {
  offset: number
  length?: number
  complete: boolean
  expiresAt?: Date | null
}

export class DraftRequest {
  readonly rules: VersionRules
  constructor(
    readonly ctx: Context,
    readonly version: InteropVersion,
    readonly deps: ResumableDraftDeps
  ) {
    this.rules = rulesOf(version)
  }

  header(name: string): string | undefined {
    const value = this.ctx.get(name)
    return value === '' ? undefined : value
  }

  uploadUrl(id: string): string {
    const base = this.deps.config.publicUrl ? this.deps.config.publicUrl.replace(/\/+$/, '') : `${this.ctx.protocol}://${this.ctx.host}`
    return `${base}${TUS_PATH}/${id}`
  }

  /** Upload-Limit for this version (none before -04). */
  uploadLimit(expiresAt?: Date | null): Record<string, string> {
    const expires = expiresAt ?? currentRequest()?.uploadExpiresAt ?? undefined
    const value = formatUploadLimit(this.version, {
      maxSize: this.deps.config.maxUploadSize,
      ...(expires ? {maxAgeSeconds: (expires.getTime() - Date.now()) / 1000} : {}),
    })
    return value ? {'Upload-Limit': value} : {}
  }

  /** The headers that describe an upload's state in any answer about it. */
  stateHeaders(state: UploadState): Record<string, string> {
    return {
      'Upload-Offset': String(state.offset),
      ...completenessHeader(this.version, state.complete),
      ...(state.length !== undefined ? {'Upload-Length': String(state.length)} : {}),
      ...this.uploadLimit(state.expiresAt),
    }
  }

  /** The client is gone, or a newer request took the upload over: end this one abruptly. */
  abandon(): void {
    this.ctx.respond = false
    this.ctx.req.socket.destroy()
  }

  /** A final answer without content. */
  answer(status: number, headers: Record<string, string>): void {
    const {ctx} = this
    ctx.status = status
    ctx.set({'Upload-Draft-Interop-Version': String(this.version), 'Cache-Control': 'no-store', ...headers})
    if (status !== 204 && ctx.method !== 'HEAD') {
      ctx.body = ''
      ctx.remove('Content-Type')
    }
  }
}
