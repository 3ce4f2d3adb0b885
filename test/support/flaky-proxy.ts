/**
 * A loopback TCP proxy that cuts each connection after it has forwarded a given number of
 * request bytes: a bad mobile network, reproducible.
 */
import net from 'node:net'
import {once} from 'node:events'

export interface FlakyProxy {
  url: string
  cuts: number
  close(): Promise<void>
}

export async function startFlakyProxy(target: string, cutAfterBytes: number): Promise<FlakyProxy> {
  const {hostname, port} = new URL(target)
  const sockets = new Set<net.Socket>()
  const proxy: FlakyProxy = {url: '', cuts: 0, close: async () => {}}
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname)
    sockets.add(client).add(upstream)
    let forwarded = 0
    client.on('data', (chunk: Buffer) => {
      forwarded += chunk.length
      if (forwarded > cutAfterBytes) {
        proxy.cuts++
        upstream.write(chunk.subarray(0, chunk.length - (forwarded - cutAfterBytes)))
        client.destroy()
        upstream.destroy()
        return
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => client.write(chunk))
    for (const s of [client, upstream]) {
      s.on('error', () => {})
      s.on('close', () => {
        sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  proxy.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  proxy.close = async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return proxy
}
