/**
 * Helpers for the fault and fuzz suites: a seeded PRNG (the seed is printed so a failing run can
 * be replayed with FAULT_SEED / FUZZ_SEED), a TCP proxy that can be cut and restored (a service
 * "restarting" from the node's point of view, without touching the service others share), and
 * a streaming PATCH whose body the test feeds piece by piece.
 */
import {once} from 'node:events'
import http from 'node:http'
import net from 'node:net'
import {PATCH_HEADERS} from '../support/http.js'
import {relayConnection} from '../support/tcp-relay.js'

export interface Random {
  seed: number
  /** A float in [0, 1). */
  next(): number
  int(min: number, max: number): number
  pick<T>(items: readonly T[]): T
  chance(p: number): boolean
}

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    seed,
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    chance: (p) => next() < p,
  }
}

/** The seed from `variable` when set (to replay a run), else a fresh one; printed either way. */
export function seedFrom(variable: string): Random {
  const given = process.env[variable]
  const seed = given ? Number(given) : Math.floor(Math.random() * 2 ** 31)
  process.stdout.write(`# ${variable}=${seed}\n`)
  return seededRandom(seed)
}

export interface CuttableProxy {
  port: number
  url(scheme: string, auth?: string, path?: string): string
  /** Drops every connection and refuses new ones (the port stops listening), like a service that went down. */
  cut(): Promise<void>
  /** Listens again on the same port. */
  restore(): Promise<void>
  connections(): number
  close(): Promise<void>
}

/** A loopback TCP proxy in front of `target` ("host:port") that the test can cut and restore. */
export async function startCuttableProxy(targetHost: string, targetPort: number): Promise<CuttableProxy> {
  const sockets = new Set<net.Socket>()
  let port = 0
  const makeServer = () => net.createServer((client) => void relayConnection(client, {host: targetHost, port: targetPort}, sockets))
  let server = makeServer()
  const listen = async () => {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as net.AddressInfo).port
  }
  await listen()
  const stop = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const s of sockets) s.destroy()
    await closed
  }
  return {
    get port() {
      return port
    },
    url: (scheme, auth = '', path = '') => `${scheme}://${auth ? `${auth}@` : ''}127.0.0.1:${port}${path}`,
    cut: stop,
    async restore() {
      server = makeServer()
      // The old port can be taken by someone else in between; retry briefly, then fail loudly.
      for (let i = 0; ; i++) {
        try {
          await listen()
          return
        } catch (error) {
          if (i >= 20) throw error
          server = makeServer()
          await new Promise((r) => setTimeout(r, 100))
        }
      }
    },
    connections: () => sockets.size,
    close: async () => {
      if (server.listening) await stop()
    },
  }
}

/** A PATCH whose body is written piece by piece; `response` settles with the answer or the error. */
export function streamingPatch(url: string, offset: number, headers: Record<string, string> = {}) {
  const req = http.request(url, {method: 'PATCH', headers: {...PATCH_HEADERS, 'Upload-Offset': String(offset), ...headers}, agent: false})
  const response = new Promise<{status: number; headers: http.IncomingHttpHeaders; body: string} | Error>((resolve) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8')}))
      res.on('error', resolve)
    })
    req.on('error', resolve)
  })
  return {
    write: (chunk: Buffer) =>
      new Promise<void>((resolve) => {
        if (req.destroyed) return resolve()
        if (req.write(chunk)) resolve()
        else {
          const done = () => {
            req.off('drain', done).off('close', done)
            resolve()
          }
          req.once('drain', done).once('close', done)
        }
      }),
    end: () => req.end(),
    destroy: () => req.destroy(),
    response,
  }
}

export const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({port, host: '127.0.0.1'})
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing accepts connections on 127.0.0.1:${port} after ${timeoutMs} ms`)
    await pause(200)
  }
}
