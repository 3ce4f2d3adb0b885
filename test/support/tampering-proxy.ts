/**
 * A loopback TCP proxy that, once armed, changes one byte of the traffic it forwards towards its
 * target: the first byte of the next occurrence of a marker (a man in the middle between nodes).
 */
import net from 'node:net'
import {listenOnLoopback, relayConnection} from './tcp-relay.js'

export interface TamperingProxy {
  url: string
  /** The next occurrence of `marker` in the forwarded requests gets its first byte changed. */
  arm(marker: Buffer): void
  disarm(): void
  /** How many bytes were changed so far. */
  tampered: number
  close(): Promise<void>
}

export async function startTamperingProxy(target: string): Promise<TamperingProxy> {
  const {hostname, port} = new URL(target)
  const sockets = new Set<net.Socket>()
  let marker: Buffer | undefined
  const proxy: TamperingProxy = {url: '', tampered: 0, arm: (m) => void (marker = m), disarm: () => void (marker = undefined), close: async () => {}}
  const server = net.createServer((client) => {
    // The end of the previous chunk, so a marker split between two reads is still found.
    let carry = Buffer.alloc(0)
    relayConnection(client, {host: hostname, port: Number(port)}, sockets, (chunk, upstream) => {
      if (marker) {
        const seen = Buffer.concat([carry, chunk])
        const at = seen.indexOf(marker)
        // (A marker whose first byte went out with the previous chunk is let through: the test sees tampered stay 0.)
        if (at >= carry.length) {
          chunk[at - carry.length] = chunk[at - carry.length]! ^ 0x01
          proxy.tampered++
          marker = undefined
        }
        carry = seen.subarray(Math.max(0, seen.length - 64))
      }
      upstream.write(chunk)
    })
  })
  Object.assign(proxy, await listenOnLoopback(server, sockets))
  return proxy
}
