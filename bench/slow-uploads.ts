/**
 * Issue 16, point 3: many slow uploads held open at once, as phones on a bad network send them.
 * BENCH_SLOW_UPLOADS uploads (default 10 000) are created, then each sends one PATCH whose body
 * trickles at ~1 KiB/s for BENCH_SLOW_SECONDS (default 60) over its own connection. Meanwhile a
 * prober sends a HEAD every 20 ms on a connection of its own. Ours against plain @tus/server:
 * uploads dropped or refused (must be 0), the server's peak RSS (ours must stay under 1 GiB),
 * the HEAD's p99 latency while they trickle (ours under 50 ms) and, apart, while they all
 * complete at once (the crowd started within a second, so it ends within one).
 *
 * Every connection is a raw socket (a node:http client costs more memory per request than the
 * servers measured); the client and the server each get their descriptor limit raised (root).
 */
import {execFileSync} from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import {formatBytes, KiB, MiB} from './lib/format.js'
import {TusClient} from './lib/http-client.js'
import {createWorkspace} from './lib/input.js'
import {compare, type BenchRecord} from './lib/results.js'
import {startServersIn, type BenchServer, type ServerKind} from './lib/servers.js'
import {envPrefix, settings} from './lib/settings.js'
import {percentile, summarize} from './lib/stats.js'
import {progress, runSuite} from './lib/suite.js'

const SUITE = 'slow-uploads'
const KINDS: ServerKind[] = ['ours', 'plainTus']
const reproduce = `${envPrefix(['BENCH_SLOW_UPLOADS', 'BENCH_SLOW_SECONDS'])}npm run bench -- ${SUITE}`
const BYTES_PER_TICK = KiB
const TICK_MS = 1000
const PROBE_MS = 20

interface SlowRun {
  completed: number
  failed: number
  firstFailure?: string
  peakRssMiB: number
  headP99: number
  headP50: number
  probes: number
  /** HEAD p99 while every upload completes (their last bytes arrive within about a second). */
  burstHeadP99: number
}

/** Raises this process's (or another's) open-file limit; root may raise the hard limit too. */
function raiseDescriptorLimit(pid: number, to: number): void {
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${to}:${to}`], {stdio: 'ignore'})
  } catch {
    progress(SUITE, `could not raise the descriptor limit of ${pid} to ${to} (prlimit, needs root): the run may fail with EMFILE`)
  }
}

/** Creates `count` uploads, 200 at a time, over a keep-alive agent. */
async function createUploads(server: BenchServer, count: number, length: number): Promise<URL[]> {
  const client = new TusClient(server.endpoint)
  const urls: URL[] = []
  try {
    for (let start = 0; start < count; start += 200) {
      const batch = Math.min(200, count - start)
      urls.push(...(await Promise.all(Array.from({length: batch}, () => client.create(length)))))
    }
  } finally {
    client.close()
  }
  return urls
}

/** One PATCH whose body trickles in; resolves with the status line and Upload-Offset of the answer. */
class TricklingPatch {
  private readonly socket: net.Socket
  private answer = ''
  private sent = 0
  readonly done: Promise<{status: number; offset: number} | {error: string}>

  constructor(
    url: URL,
    private readonly length: number
  ) {
    this.socket = net.connect({host: url.hostname, port: Number(url.port)})
    this.socket.setNoDelay(true)
    this.socket.write(
      `PATCH ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n` +
        `Upload-Offset: 0\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`
    )
    this.done = new Promise((resolve) => {
      this.socket.on('data', (chunk: Buffer) => {
        this.answer += chunk.toString('latin1')
      })
      this.socket.on('error', (error) => resolve({error: `${error.message} after ${this.sent} bytes`}))
      this.socket.on('close', () => {
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(this.answer)?.[1] ?? 0)
        const offset = Number(/\r\nupload-offset: *(\d+)/i.exec(this.answer)?.[1] ?? -1)
        if (status === 0) resolve({error: `connection closed without an answer after ${this.sent} bytes`})
        else resolve({status, offset})
      })
    })
  }

  /** Sends the next piece of the body (nothing once it is all sent or the socket is gone). */
  tick(piece: Buffer): void {
    if (this.sent >= this.length || this.socket.destroyed) return
    const n = Math.min(piece.length, this.length - this.sent)
    this.socket.write(n === piece.length ? piece : piece.subarray(0, n))
    this.sent += n
  }
}

/** HEADs one upload every PROBE_MS until stopped; returns the latencies in ms. */
function probeHeads(url: URL): {stop(): Promise<number[]>} {
  const agent = new http.Agent({keepAlive: true, maxSockets: 1})
  const latencies: number[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      const started = performance.now()
      await new Promise<void>((resolve) => {
        const request = http.request(url, {method: 'HEAD', agent, headers: {'Tus-Resumable': '1.0.0'}}, (response) => {
          response.resume()
          response.on('end', () => {
            if (response.statusCode === 200) latencies.push(performance.now() - started)
            resolve()
          })
        })
        request.on('error', () => resolve())
        request.end()
      })
      await new Promise((resolve) => setTimeout(resolve, PROBE_MS))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      agent.destroy()
      return latencies
    },
  }
}

async function slowRun(server: BenchServer, count: number, seconds: number): Promise<SlowRun> {
  const length = seconds * BYTES_PER_TICK
  progress(SUITE, `${server.label}: creating ${count} uploads of ${formatBytes(length)}`)
  const urls = await createUploads(server, count + 1, length)
  const probeTarget = urls.pop()!
  server.rss.reset()
  const patches: TricklingPatch[] = []
  // Connections open over the first second, as a crowd of phones would, not in one instant.
  for (const [i, url] of urls.entries()) {
    patches.push(new TricklingPatch(url, length))
    if (i % 500 === 499) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const prober = probeHeads(probeTarget)
  const piece = Buffer.alloc(BYTES_PER_TICK, 0x61)
  progress(SUITE, `${server.label}: ${patches.length} PATCHes trickling for ${seconds} s`)
  // Each connection sends one piece per second; the sends are spread over the second.
  const slices = 10
  for (let step = 0; step < seconds * slices; step++) {
    for (let i = step % slices; i < patches.length; i += slices) patches[i]!.tick(piece)
    await new Promise((resolve) => setTimeout(resolve, TICK_MS / slices))
  }
  // The trickle is over; every upload now completes within about a second: measured apart.
  const latencies = await prober.stop()
  const burstProber = probeHeads(probeTarget)
  const outcomes = await Promise.all(patches.map((p) => p.done))
  const burstLatencies = await burstProber.stop()
  const peakRssMiB = server.rss.read() / MiB
  await server.clearStorage()
  const failures = outcomes.flatMap((o) => ('error' in o ? [o.error] : o.status !== 204 || o.offset !== length ? [`HTTP ${o.status}, Upload-Offset ${o.offset}`] : []))
  return {
    completed: outcomes.length - failures.length,
    failed: failures.length,
    ...(failures[0] ? {firstFailure: failures[0]} : {}),
    peakRssMiB,
    headP99: latencies.length ? percentile(latencies, 99) : Number.NaN,
    headP50: latencies.length ? percentile(latencies, 50) : Number.NaN,
    probes: latencies.length,
    burstHeadP99: burstLatencies.length ? percentile(burstLatencies, 99) : Number.NaN,
  }
}

await runSuite(SUITE, async () => {
  const count = settings.slowUploads
  const seconds = settings.slowUploadSeconds
  const workspace = await createWorkspace('bench-slow')
  const notes: string[] = []
  raiseDescriptorLimit(process.pid, 4 * count + 1024)
  try {
    const servers: BenchServer[] = []
    try {
      await startServersIn(workspace.dir, KINDS, servers)
      // A server holds a socket and an open file per upload, plus its own.
      for (const server of servers) raiseDescriptorLimit(server.rss.pid, 4 * count + 1024)
      const runs = new Map<ServerKind, SlowRun>()
      for (const server of servers) {
        const run = await slowRun(server, count, seconds)
        runs.set(server.kind, run)
        progress(SUITE, `${server.label}: ${run.completed} completed, ${run.failed} failed, peak RSS ${run.peakRssMiB.toFixed(0)} MiB, HEAD p50 ${run.headP50.toFixed(1)} ms, p99 ${run.headP99.toFixed(1)} ms over ${run.probes} probes (p99 ${run.burstHeadP99.toFixed(1)} ms as they complete)`)
        if (run.firstFailure) notes.push(`${server.label}: ${run.failed} of ${count} uploads failed, first: ${run.firstFailure}`)
      }
      const ours = runs.get('ours')!
      const plain = runs.get('plainTus')!
      const one = (value: number) => summarize([value])
      const label = `${count} slow uploads (~1 KiB/s for ${seconds} s each)`
      const base = {suite: SUITE, baselineName: 'plain @tus/server', reproduce}
      const records: BenchRecord[] = [
        compare({...base, name: `${label}: uploads dropped or refused`, unit: 'uploads', better: 'lower', goal: {oursAtMost: 0, text: 'none'}}, one(ours.failed), one(plain.failed)),
        compare({...base, name: `${label}: server peak RSS`, unit: 'MiB', better: 'lower', goal: {oursAtMost: 1024, text: '< 1 GiB'}}, one(ours.peakRssMiB), one(plain.peakRssMiB)),
        compare({...base, name: `${label}: HEAD p99 meanwhile`, unit: 'ms', better: 'lower', goal: {oursAtMost: 50, text: '< 50 ms'}}, one(ours.headP99), one(plain.headP99)),
        compare({...base, name: `${label}: HEAD p99 while all of them complete at once`, unit: 'ms', better: 'lower'}, one(ours.burstHeadP99), one(plain.burstHeadP99)),
      ]
      return {settings: {uploads: count, seconds, rate: '1 KiB/s'}, records, notes}
    } finally {
      await Promise.allSettled(servers.map((s) => s.stop()))
    }
  } finally {
    await workspace.remove()
  }
})
