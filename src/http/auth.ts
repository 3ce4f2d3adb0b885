/**
 * Bearer JWT authentication. With AUTH_JWT_SECRET (HS256) or AUTH_JWKS_URL set, every upload
 * and status request needs a valid token, and its `sub` is the caller. With neither, requests
 * are anonymous (subject null).
 */
import {createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey} from 'jose'
import type {Middleware} from 'koa'
import type {Config} from '../config/index.js'
import {Unauthorized} from '../errors.js'
import type {AppState} from './request-context-middleware.js'

export type Authenticator = (authorization: string | undefined) => Promise<string | null>

export function createAuthenticator(config: Pick<Config, 'authJwtSecret' | 'authJwksUrl' | 'authIssuer' | 'authAudience'> & Partial<Pick<Config, 'authAllowNoExpiry'>>): Authenticator | null {
  const key: Uint8Array | JWTVerifyGetKey | null = config.authJwtSecret
    ? new TextEncoder().encode(config.authJwtSecret)
    : config.authJwksUrl
      ? createRemoteJWKSet(new URL(config.authJwksUrl))
      : null
  if (!key) return null
  const options = {
    algorithms: config.authJwtSecret ? ['HS256'] : ['RS256', 'ES256', 'PS256', 'EdDSA'],
    ...(config.authIssuer ? {issuer: config.authIssuer} : {}),
    ...(config.authAudience ? {audience: config.authAudience} : {}),
  }
  const challenge = {'WWW-Authenticate': 'Bearer realm="video-ingest"'}
  return async (authorization) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')
    if (!match) throw new Unauthorized('a bearer token is required (Authorization: Bearer <JWT>)', challenge)
    const invalid = (message: string) => new Unauthorized(message, {...challenge, 'WWW-Authenticate': 'Bearer realm="video-ingest", error="invalid_token"'})
    const payload = await jwtVerify(match[1]!, key as Uint8Array, options).then(
      (verified) => verified.payload,
      () => {
        throw invalid('the bearer token is invalid or expired')
      }
    )
    if (typeof payload.sub !== 'string' || payload.sub === '') throw invalid('the bearer token is invalid or expired')
    // A token without exp would be valid forever once leaked (AUTH_ALLOW_NO_EXPIRY accepts it).
    if (payload.exp === undefined && !config.authAllowNoExpiry) throw invalid('the bearer token has no expiry (exp); ask its issuer for one that expires')
    return payload.sub
  }
}

/** Sets the caller on the request context; CORS preflights (OPTIONS) pass without a token. */
export function authenticate(authenticator: Authenticator | null): Middleware<AppState> {
  return async (ctx, next) => {
    if (authenticator && ctx.method !== 'OPTIONS') {
      ctx.state.context.subject = await authenticator(ctx.get('authorization') || undefined)
    }
    await next()
  }
}
