/**
 * A loopback TCP proxy that cuts each connection after it has forwarded a given number of
 * request bytes: a bad mobile network, reproducible.
 */
import net from 'node:net'
import {listenOnLoopback, relayConnection} from './tcp-relay.js'

export interface FlakyProxy {
  url: string
  cuts: number
  /** Request bytes forwarded so far, over all connections. */
  bytes: number
  /** Bytes each connection may forward before it is cut (Infinity: a good network). */
  cutAfterBytes: number
  /** Changes cutAfterBytes, counted from now on open connections too (kept-alive ones included). */
  cutEachConnectionAfter(bytes: number): void
  close(): Promise<void>
}

export async function startFlakyProxy(target: string, cutAfterBytes: number): Promise<FlakyProxy> {
  const {hostname, port} = new URL(target)
  const sockets = new Set<net.Socket>()
  /** Bytes forwarded by each open connection since it opened or since the limit last changed. */
  const counters = new Set<{forwarded: number}>()
  const proxy: FlakyProxy = {
    url: '',
    cuts: 0,
    bytes: 0,
    cutAfterBytes,
    cutEachConnectionAfter(bytes) {
      proxy.cutAfterBytes = bytes
      for (const counter of counters) counter.forwarded = 0
    },
    close: async () => {},
  }
  const server = net.createServer((client) => {
    const counter = {forwarded: 0}
    counters.add(counter)
    client.on('close', () => counters.delete(counter))
    relayConnection(client, {host: hostname, port: Number(port)}, sockets, (chunk, upstream) => {
      counter.forwarded += chunk.length
      if (counter.forwarded > proxy.cutAfterBytes) {
        proxy.cuts++
        const kept = chunk.subarray(0, chunk.length - (counter.forwarded - proxy.cutAfterBytes))
        proxy.bytes += kept.length
        upstream.write(kept)
        client.destroy()
        upstream.destroy()
        return
      }
      proxy.bytes += chunk.length
      upstream.write(chunk)
    })
  })
  Object.assign(proxy, await listenOnLoopback(server, sockets))
  return proxy
}
