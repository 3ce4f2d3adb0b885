/**
 * One HTTP exchange over a raw TCP socket: the fuzzer sends bytes Node's http client would
 * refuse to (NUL in the path, bad header names, bodies longer than declared) and reads every
 * status line the server answers with (extra body bytes can be parsed as a second request).
 */
import net from 'node:net'

export interface Exchange {
  statuses: number[]
  /** Everything received (capped), for the report and the secret check. */
  received: string
  /** No answer started within the hard limit. */
  hung: boolean
  error?: string
}

export interface SendPlan {
  /** Written in order; a number is a pause in milliseconds (slow clients). */
  parts: Array<Buffer | number>
  /** Give up (and call it a hang if nothing came back) after this long. */
  hardMs?: number
}

const STATUS_LINE = /(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g

export function exchange(port: number, plan: SendPlan): Promise<Exchange> {
  const hardMs = plan.hardMs ?? 15_000
  return new Promise((resolve) => {
    const socket = net.connect({port, host: '127.0.0.1'})
    const chunks: Buffer[] = []
    let size = 0
    let error: string | undefined
    let idle: NodeJS.Timeout | undefined
    let settled = false
    const finish = (hung: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(hard)
      clearTimeout(idle)
      socket.destroy()
      const received = Buffer.concat(chunks).toString('latin1')
      const statuses = [...received.matchAll(STATUS_LINE)].map((m) => Number(m[1]))
      resolve({statuses, received, hung: hung && statuses.length === 0, ...(error ? {error} : {})})
    }
    const hard = setTimeout(() => finish(true), hardMs)
    socket.on('data', (chunk: Buffer) => {
      if (size < 256 * 1024) chunks.push(chunk)
      size += chunk.length
      // An answer has started: give the rest a moment, then move on (keep-alive or not).
      clearTimeout(idle)
      idle = setTimeout(() => finish(false), 150)
    })
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message
      finish(false)
    })
    socket.on('close', () => finish(false))
    socket.once('connect', async () => {
      for (const part of plan.parts) {
        if (settled || socket.destroyed) return
        if (typeof part === 'number') await new Promise((r) => setTimeout(r, part))
        else if (!socket.write(part)) await new Promise((r) => socket.once('drain', r).once('close', r))
      }
      // No half-close: Node's server aborts a request whose client sent FIN before the answer
      // (httpAllowHalfOpen is off), which would hide the answer we are here to check.
    })
  })
}

/** A request as bytes: the request line and headers verbatim, then the body. */
export function rawRequest(method: string, target: string, headers: Array<[string, string]>, body?: Buffer): Buffer {
  const head = `${method} ${target} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
  return body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1')
}
