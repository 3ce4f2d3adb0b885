/**
 * The koa middleware that answers every error thrown below it, for every route: the request's
 * protocol (request-protocol.ts) picks the body's format, error-answer.ts the status, headers and
 * body. (@tus/server catches its own handlers' errors: its error hook in tus.ts answers them
 * through the same function.)
 */
import type {Middleware} from 'koa'
import {answerError} from './error-answer.js'
import type {AppState} from './request-context-middleware.js'
import {requestProtocol} from './request-protocol.js'

export function errorHandler(): Middleware<AppState> {
  return async (ctx, next) => {
    try {
      await next()
    } catch (error) {
      const {context} = ctx.state
      const answer = answerError(error, requestProtocol(ctx), context.requestId)
      if (answer.log === 'error') context.log.error({err: error}, 'unexpected error')
      else if (answer.log === 'warn') context.log.warn({err: error}, answer.message)
      // Part of an answer is out already: all the client can still learn is that it is cut.
      if (ctx.headerSent || !ctx.writable) return void ctx.req.socket.destroy()
      ctx.status = answer.status
      if (answer.statusText) ctx.message = answer.statusText
      ctx.set(answer.headers)
      ctx.body = answer.body
    }
  }
}
