/**
 * One check of the request path for every route, before any routing: a path with dot segments
 * (`/files/x/../<id>`, also percent-encoded, `%2e%2e`) or empty ones (`//`, `/files//<id>`)
 * would name one thing to our routers and another to @tus/server or a file system, so it is
 * refused (400) rather than normalised. A trailing slash (`/files/`) is not an empty segment.
 */
import type {Middleware} from 'koa'
import {BadRequest} from '../errors.js'
import type {AppState} from './request-context-middleware.js'

function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/** Why the path is refused, or undefined when it is unambiguous. */
export function ambiguousPath(rawPath: string): string | undefined {
  const segments = rawPath.split('/').slice(1)
  for (const [i, segment] of segments.entries()) {
    if (segment === '' && i < segments.length - 1) return 'empty path segments (//) are not allowed'
    // An encoded slash or backslash must not smuggle a dot segment either (`..%2f`, `..%5c`).
    if (decoded(segment).split(/[/\\]/).some((part) => part === '.' || part === '..')) return 'dot segments (. and ..) are not allowed in a path'
  }
}

export function refuseAmbiguousPaths(): Middleware<AppState> {
  return async (ctx, next) => {
    const problem = ambiguousPath(ctx.path)
    if (problem) throw new BadRequest(`${problem}: ask for the resource by its plain path`)
    await next()
  }
}
