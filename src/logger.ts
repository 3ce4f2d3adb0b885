import pino, {type Logger} from 'pino'

/** JSON lines in production; readable lines when a person is watching a terminal. */
export function createLogger(options: {level: string; pretty?: boolean}): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true
  return pino({
    level: options.level,
    base: {pid: process.pid},
    redact: {paths: ['req.headers.authorization', 'headers.authorization', 'token', '*.token', 'secret', '*.secret'], censor: '[redacted]'},
    ...(pretty ? {transport: {target: 'pino-pretty', options: {colorize: true, translateTime: 'SYS:HH:MM:ss.l'}}} : {}),
  })
}
