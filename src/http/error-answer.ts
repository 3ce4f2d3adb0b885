/**
 * The one place where an error becomes an HTTP answer: its status, its headers (Retry-After
 * included) and its body, in the format of the protocol the request speaks (request-protocol.ts):
 * tus a plain-text reason, the IETF draft a problem document where its version defines one
 * (else plain text), our own API `{"error": ...}`. The koa error middleware (error-handler.ts),
 * @tus/server's error hook (tus.ts) and a peer that cannot be reached (cluster/peer-http.ts) all
 * answer through it.
 */
import {ERRORS} from '@tus/utils'
import {AppError, databaseUnavailable, storageError} from '../errors.js'
import type {RequestProtocol} from './request-protocol.js'
import {DraftError} from './resumable-draft/draft-error.js'
import {problemDocument, rulesOf} from './resumable-draft/interop.js'
import {TUS_REASON_PHRASES} from './tus-protocol.js'

/** What an error means for the client, before any protocol gives it a form. */
export interface ErrorMeaning {
  status: number
  /** For people; never the text of an error we did not expect. */
  message: string
  headers: Record<string, string>
  /** False for an error nobody anticipated: a 500, logged with its stack. */
  expected: boolean
}

export interface ErrorAnswer {
  status: number
  /** A reason phrase the status line needs beyond Node's own (460 Checksum Mismatch). */
  statusText?: string
  /** Content-Type included. */
  headers: Record<string, string>
  body: string
  /** How the answer should be logged: not at all (the client's mistake), a warning (our trouble, expected), an error. */
  log: 'none' | 'warn' | 'error'
  message: string
}

/** How long a client should wait before retrying, when the error itself does not say. */
const RETRY_AFTER_SECONDS: Record<number, number> = {429: 60, 503: 5}

const meaningOf = (error: AppError): ErrorMeaning => ({status: error.status, message: error.message, headers: error.headers, expected: true})

/** What an error means, whatever threw it: ours (AppError), the disk's, the database's, koa's, @tus/server's. */
export function meaningOfError(error: unknown): ErrorMeaning {
  let meaning = explain(error)
  const retryAfter = RETRY_AFTER_SECONDS[meaning.status]
  if (retryAfter !== undefined && !Object.keys(meaning.headers).some((name) => name.toLowerCase() === 'retry-after')) {
    meaning = {...meaning, headers: {...meaning.headers, 'Retry-After': String(retryAfter)}}
  }
  return meaning
}

function explain(error: unknown): ErrorMeaning {
  if (error instanceof AppError) return meaningOf(error)
  // A full or read-only disk can surface raw (ENOSPC from a stream torn down before the store maps it).
  const storage = storageError(error)
  if (storage) return meaningOf(storage)
  const database = databaseUnavailable(error)
  if (database) return meaningOf(database)
  if (error === ERRORS.ERR_LOCK_TIMEOUT) return {status: 423, message: 'another request is writing to this upload; retry after it ends', headers: {}, expected: true}
  // koa's and its middleware's errors (http-errors): the client's part of them.
  const status = (error as {status?: number} | undefined)?.status
  if (typeof status === 'number' && status >= 400 && status < 500) return {status, message: (error as Error).message, headers: {}, expected: true}
  // @tus/utils' ERRORS ({status_code, body}), thrown by @tus/server or the store; their 500s are ours to log.
  if (typeof error === 'object' && error !== null && 'status_code' in error) {
    const {status_code, body} = error as {status_code: number; body?: string}
    if (status_code >= 400 && status_code !== 500) return {status: status_code, message: String(body ?? '').trim() || 'request refused', headers: {}, expected: true}
  }
  return {status: 500, message: 'internal error', headers: {}, expected: false}
}

/** The answer to `error` for a request speaking `protocol`; `requestId` is quoted in an API 500. */
export function answerError(error: unknown, protocol: RequestProtocol, requestId?: string): ErrorAnswer {
  const meaning = meaningOfError(error)
  const {status, headers, expected} = meaning
  const log = !expected ? 'error' : status >= 500 ? 'warn' : 'none'
  const text = (message: string) => `${message}\n`
  const plain = 'text/plain; charset=utf-8'
  switch (protocol.kind) {
    case 'api': {
      const body = expected ? {error: meaning.message} : {error: 'internal error', ...(requestId ? {requestId} : {})}
      return {status, headers: {...headers, 'Content-Type': 'application/json; charset=utf-8'}, body: JSON.stringify(body), log, message: meaning.message}
    }
    case 'tus': {
      const message = expected ? meaning.message : 'internal error while handling the upload'
      return {
        status,
        ...(TUS_REASON_PHRASES[status] ? {statusText: TUS_REASON_PHRASES[status]} : {}),
        headers: {'Tus-Resumable': '1.0.0', 'Cache-Control': 'no-store', ...headers, 'Content-Type': plain},
        body: text(message),
        log,
        message,
      }
    }
    case 'draft': {
      const message = expected ? meaning.message : 'internal error while handling the upload'
      const versionHeader: Record<string, string> = protocol.version === null ? {} : {'Upload-Draft-Interop-Version': String(protocol.version)}
      const problem = error instanceof DraftError ? error.problem : undefined
      const asProblem = problem && protocol.version !== null && rulesOf(protocol.version).problems.includes(problem.type)
      return {
        status,
        headers: {...versionHeader, 'Cache-Control': 'no-store', ...headers, 'Content-Type': asProblem ? 'application/problem+json' : plain},
        body: asProblem ? problemDocument(problem.type, message, problem.members) : text(message),
        log,
        message,
      }
    }
  }
}
