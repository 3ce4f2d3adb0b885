/**
 * An answer given before the request body was read (a 409 at the wrong offset, a 423, a 413)
 * must reach the client. @tus/server marks such answers `Connection: close`; closing a socket
 * with request bytes still unread makes the kernel send a reset, which can discard the answer
 * before the client (or a forwarding node) reads it: it then sees EPIPE or ECONNRESET instead of
 * the 409. So the rest of a body of bounded size is read and dropped, and the connection kept;
 * a larger or endless one is still cut, after a grace period.
 */
import type {IncomingMessage} from 'node:http'

/** Bytes of an unread body worth reading to keep an answer intact, and how long to wait for them. */
const DRAIN_LIMIT = 64 * 1024 * 1024
const DRAIN_GRACE_MS = 10_000

export function drainUnreadBody(req: IncomingMessage, headers: Headers): void {
  const consuming = (req as IncomingMessage & {_consuming?: boolean})._consuming === true
  if (req.complete || req.destroyed || consuming) return
  const declared = Number(req.headers['content-length'] ?? Number.NaN)
  if (Number.isFinite(declared) && declared > DRAIN_LIMIT) return
  // Node reads and drops the rest of an unconsumed body after the answer, when the connection stays open.
  if (headers.get('connection')?.toLowerCase() === 'close') headers.delete('connection')
  const timer = setTimeout(() => req.socket?.destroy(), DRAIN_GRACE_MS)
  timer.unref()
  const done = () => clearTimeout(timer)
  req.once('end', done)
  req.once('close', done)
}
