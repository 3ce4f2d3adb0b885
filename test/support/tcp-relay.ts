/**
 * One connection of a loopback TCP proxy: `client` is joined to a new connection to `target`,
 * both are tracked in `sockets` while open, and closing either closes both. `onRequest` sees
 * each chunk the client sends and writes what it wants of it (all of it when not given);
 * the answers pass back untouched. The test proxies (flaky, tampering, cuttable) are built on it.
 */
import {once} from 'node:events'
import net from 'node:net'

export function relayConnection(client: net.Socket, target: {host: string; port: number}, sockets: Set<net.Socket>, onRequest?: (chunk: Buffer, upstream: net.Socket) => void): net.Socket {
  const upstream = net.connect(target.port, target.host)
  sockets.add(client).add(upstream)
  if (onRequest) client.on('data', (chunk: Buffer) => onRequest(chunk, upstream))
  else client.pipe(upstream)
  upstream.pipe(client)
  for (const s of [client, upstream]) {
    s.on('error', () => {})
    s.on('close', () => {
      sockets.delete(s)
      client.destroy()
      upstream.destroy()
    })
  }
  return upstream
}

/** Starts `server` on a free loopback port: its URL, and a close that drops every connection. */
export async function listenOnLoopback(server: net.Server, sockets: Set<net.Socket>): Promise<{url: string; close(): Promise<void>}> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
