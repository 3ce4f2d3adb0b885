import assert from 'node:assert/strict'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {Readable} from 'node:stream'
import {test} from 'node:test'
import {PeerIdle, peerRequest} from './peer-http.js'

async function listen(server: Server): Promise<URL> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
}

function close(server: Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

/** 64 MiB, far more than the socket buffers hold, produced only as fast as it is read. */
function bigBody(): Readable {
  let left = 64
  return new Readable({
    read() {
      this.push(left-- > 0 ? Buffer.alloc(1 << 20, 1) : null)
    },
  })
}

test('a copy to a peer that stops reading (frozen, or its link cut without a reset) fails after the idle timeout instead of hanging', {timeout: 15_000}, async () => {
  const server = createServer((req) => req.pause()) // takes the request, never reads the body, never answers
  const url = await listen(server)
  try {
    const started = Date.now()
    await assert.rejects(peerRequest(url, {method: 'PUT', headers: {}, body: bigBody(), idleMs: 300}), (error: Error) => error instanceof PeerIdle && /moved no byte for 300 ms/.test(error.message))
    assert.ok(Date.now() - started < 10_000)
  } finally {
    await close(server)
  }
})

test('an answer that stops midway fails its stream after the idle timeout; a peer that keeps sending is never cut', {timeout: 15_000}, async () => {
  const server = createServer((req, res) => {
    res.writeHead(200)
    if (req.url === '/stalls') return void res.write(Buffer.alloc(1000))
    // 2 s of a chunk every 100 ms: slower than the idle timeout in total, never idle that long.
    let chunks = 20
    const timer = setInterval(() => (chunks-- > 0 ? res.write(Buffer.alloc(1000)) : (clearInterval(timer), res.end())), 100)
  })
  const url = await listen(server)
  try {
    const stalled = await peerRequest(new URL('/stalls', url), {method: 'GET', headers: {}, idleMs: 300})
    await assert.rejects(
      (async () => {
        for await (const chunk of stalled) void chunk
      })(),
      (error: Error) => error instanceof PeerIdle || /aborted/.test(error.message)
    )
    const steady = await peerRequest(new URL('/steady', url), {method: 'GET', headers: {}, idleMs: 300})
    let bytes = 0
    for await (const chunk of steady) bytes += (chunk as Buffer).length
    assert.equal(bytes, 20_000)
  } finally {
    await close(server)
  }
})
