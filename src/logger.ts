import pino, {type DestinationStream, type Logger} from 'pino'
import {currentRequest} from './request-context.js'

/**
 * Keys whose values never reach a log line, wherever they appear (a config dump, a request's
 * headers, an error's properties): credentials, tokens and the URLs that may embed them.
 */
const SECRET_KEYS = ['authorization', 'cookie', 'password', 'token', 'secret', 'databaseUrl', 'amqpUrl', 'authJwtSecret', 'clusterSecret', 'adminToken', 'metricsToken', 'webhookSecret']
const REDACT_PATHS = [
  ...SECRET_KEYS.flatMap((key) => [key, `*.${key}`]),
  'req.headers.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.cookie',
  'headers["x-cluster-signature"]',
]

/** `scheme://user:password@host` → `scheme://user:[redacted]@host`, in any string. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s/@]*@/gi
const BEARER = /\b(Bearer\s+)[A-Za-z0-9._~+/=-]+/g

export function scrubSecrets(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1:[redacted]@').replace(BEARER, '$1[redacted]')
}

/** Copies plain objects and arrays (a few levels deep), scrubbing their strings; other values pass as they are. */
function scrubValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubSecrets(value)
  if (depth <= 0 || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth - 1))
  if (Object.getPrototypeOf(value) !== Object.prototype) return value
  const out: Record<string, unknown> = {}
  for (const [key, v] of Object.entries(value)) out[key] = scrubValue(v, depth - 1)
  return out
}

export interface LoggerOptions {
  level: string
  /** Default: pretty when stdout is a terminal. */
  pretty?: boolean
  /** Where JSON lines go (default stdout); tests capture them here. Ignored when pretty. */
  destination?: DestinationStream
}

/**
 * JSON lines in production; readable lines when a person is watching a terminal. Every line
 * logged while a request is being served carries its request id, whichever logger wrote it
 * (the request's own logger binds it, with the upload id when known; others get it here).
 */
export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true
  const settings: pino.LoggerOptions = {
    level: options.level,
    base: {pid: process.pid},
    redact: {paths: REDACT_PATHS, censor: '[redacted]'},
    mixin(_object, _level, logger) {
      const context = currentRequest()
      // The request's logger already binds its ids; a duplicate key would only add noise.
      return context && logger !== context.log ? {requestId: context.requestId} : {}
    },
    // The standard serializer's result has its own prototype: copy its fields to scrub them.
    serializers: {err: (error: Error) => scrubValue({...pino.stdSerializers.err(error)}, 4)},
    formatters: {log: (object) => scrubValue(object, 4) as Record<string, unknown>},
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((arg) => (typeof arg === 'string' ? scrubSecrets(arg) : arg)) as Parameters<typeof method>)
      },
    },
  }
  if (pretty) return pino({...settings, transport: {target: 'pino-pretty', options: {colorize: true, translateTime: 'SYS:HH:MM:ss.l'}}})
  return options.destination ? pino(settings, options.destination) : pino(settings)
}

/**
 * Binds an upload id to the current request's logger once the request has created it (a tus
 * POST learns its id only then), so the rest of the request's lines carry it.
 */
export function bindUploadToRequest(uploadId: string): void {
  const context = currentRequest()
  if (context && context.log.bindings().uploadId === undefined) context.log = context.log.child({uploadId})
}
