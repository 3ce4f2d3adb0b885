/**
 * The one place where errors become HTTP answers for our own routes (the tus endpoint maps its
 * errors through @tus/server's onResponseError, with the same rules: see errorToResponse).
 */
import type {Middleware} from 'koa'
import {AppError, ServiceUnavailable, storageError} from '../errors.js'
import type {AppState} from './request-context.js'

export interface ErrorAnswer {
  status: number
  message: string
  headers: Record<string, string>
}

/**
 * Database connection failures are the node's trouble, not the client's: 503, retry later. So
 * is a request that waited too long for a connection of the pool (pg-pool: "timeout exceeded
 * when trying to connect"): the node is overloaded, and the client should come back.
 */
function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as {code?: string; message?: string} | undefined
  const code = e?.code ?? ''
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08003', '08006'].includes(code) ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(e?.message ?? '')
  )
}

export function errorToAnswer(error: unknown): ErrorAnswer | undefined {
  if (error instanceof AppError) return {status: error.status, message: error.message, headers: error.headers}
  // A full or read-only disk can surface raw (ENOSPC from a stream torn down before the store maps it).
  const storage = storageError(error)
  if (storage) return {status: storage.status, message: storage.message, headers: storage.headers}
  if (isDatabaseUnavailable(error)) {
    const e = new ServiceUnavailable('the upload database is unavailable; try again shortly', {'Retry-After': '5'})
    return {status: e.status, message: e.message, headers: e.headers}
  }
  const status = (error as {status?: number; expose?: boolean} | undefined)?.status
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return {status, message: (error as Error).message, headers: {}}
  }
  return undefined
}

export function errorHandler(): Middleware<AppState> {
  return async (ctx, next) => {
    try {
      await next()
    } catch (error) {
      const answer = errorToAnswer(error)
      if (answer) {
        if (answer.status >= 500) ctx.state.context.log.warn({err: error}, answer.message)
        ctx.status = answer.status
        ctx.set(answer.headers)
        ctx.body = {error: answer.message}
      } else {
        ctx.state.context.log.error({err: error}, 'unexpected error')
        ctx.status = 500
        ctx.body = {error: 'internal error', requestId: ctx.state.context.requestId}
      }
    }
  }
}
