/**
 * Interim (1xx) responses Node has no API for. Node writes 100, 102 and 103 itself; 104 Upload
 * Resumption Supported we write on the socket, the way Node writes those: only while this
 * response owns the connection and has sent nothing, and only to an HTTP/1.1 client (an
 * HTTP/1.0 client cannot tell an interim response from the final one).
 */
import type {IncomingMessage, ServerResponse} from 'node:http'

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const FIELD_VALUE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/

/** Writes the interim response if it can be written safely; false when it was left out. */
export function writeInterimResponse(req: IncomingMessage, res: ServerResponse, status: number, reason: string, fields: Record<string, string>): boolean {
  if (status < 102 || status > 199) throw new RangeError(`not an interim status: ${status}`)
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor !== 1) return false
  // A pipelined request's response has no socket until the ones before it are done.
  const socket = res.socket
  if (!socket || !socket.writable || res.headersSent || res.writableEnded) return false
  const lines = Object.entries(fields)
  if (lines.some(([name, value]) => !TOKEN.test(name) || !FIELD_VALUE.test(value))) return false
  socket.write(`HTTP/1.1 ${status} ${reason}\r\n${lines.map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`, 'latin1')
  return true
}
