/**
 * Issue 9, point 2: many uploads at once. 200 concurrent 5 MiB uploads and 1000 concurrent
 * 256 KiB uploads (creation + one PATCH each): uploads/s, p50/p99 latency, errors (must be 0)
 * and the server's peak RSS, ours against plain @tus/server + @tus/file-store. Goals (issue 16):
 * throughput >= 1.0x, p99 <= 1.0x, peak RSS <= 1.2x plain @tus/server, no errors.
 */
import {formatBytes, KiB, MiB} from './lib/format.js'
import {TusClient} from './lib/http-client.js'
import {createWorkspace, randomBuffer, requireFreeSpace} from './lib/input.js'
import {compare, type BenchRecord} from './lib/results.js'
import {startServersIn, type BenchServer, type ServerKind} from './lib/servers.js'
import {envPrefix, settings} from './lib/settings.js'
import {percentile, summarize} from './lib/stats.js'
import {alternating, progress, runSuite} from './lib/suite.js'

const SUITE = 'upload-concurrency'
const KINDS: ServerKind[] = ['ours', 'plainTus']
const CASES = [
  {count: 200, size: 5 * MiB},
  {count: 1000, size: 256 * KiB},
]
const reproduce = `${envPrefix(['BENCH_RUNS'])}npm run bench -- ${SUITE}`

interface Burst {
  uploadsPerSecond: number
  p50: number
  p99: number
  errors: number
  firstError?: string
  peakRssMiB: number
}

/** `count` uploads of `body` started at once; latency is creation start to the PATCH's answer. */
async function burst(server: BenchServer, count: number, body: Buffer): Promise<Burst> {
  const client = new TusClient(server.endpoint)
  server.rss.reset()
  const started = performance.now()
  const outcomes = await Promise.all(
    Array.from({length: count}, async () => {
      const begun = performance.now()
      try {
        await client.uploadBuffer(body)
        return {ms: performance.now() - begun, error: undefined}
      } catch (error) {
        return {ms: undefined, error: error instanceof Error ? error.message : String(error)}
      }
    })
  )
  const seconds = (performance.now() - started) / 1000
  const peakRssMiB = server.rss.read() / MiB
  client.close()
  await server.clearStorage()
  const latencies = outcomes.flatMap((o) => (o.ms !== undefined ? [o.ms] : []))
  const failures = outcomes.flatMap((o) => (o.error !== undefined ? [o.error] : []))
  return {
    uploadsPerSecond: latencies.length / seconds,
    p50: latencies.length ? percentile(latencies, 50) : Number.NaN,
    p99: latencies.length ? percentile(latencies, 99) : Number.NaN,
    errors: failures.length,
    ...(failures[0] ? {firstError: failures[0]} : {}),
    peakRssMiB,
  }
}

await runSuite(SUITE, async () => {
  const runs = settings.concurrencyRuns
  const workspace = await createWorkspace('bench-concurrency')
  const notes: string[] = []
  try {
    await requireFreeSpace(workspace.dir, Math.max(...CASES.map((c) => c.count * c.size)), SUITE)
    const servers: BenchServer[] = []
    try {
      await startServersIn(workspace.dir, KINDS, servers)
      const bodies = CASES.map((c) => randomBuffer(c.size))
      // Warm-up, not measured.
      for (const server of servers) await burst(server, 20, bodies[1]!)

      const samples = new Map<string, Burst[]>()
      for (let run = 0; run < runs; run++) {
        for (const [index, shape] of CASES.entries()) {
          for (const server of alternating(servers, run)) {
            const result = await burst(server, shape.count, bodies[index]!)
            const key = `${index}/${server.kind}`
            samples.set(key, [...(samples.get(key) ?? []), result])
            progress(SUITE, `run ${run + 1}/${runs}, ${shape.count} × ${formatBytes(shape.size)}, ${server.label}: ${result.uploadsPerSecond.toFixed(0)} uploads/s, p50 ${result.p50.toFixed(0)} ms, p99 ${result.p99.toFixed(0)} ms, ${result.errors} errors, peak RSS ${result.peakRssMiB.toFixed(0)} MiB`)
            if (result.firstError) notes.push(`${shape.count} × ${formatBytes(shape.size)}, ${server.label}, run ${run + 1}: ${result.errors} errors, first: ${result.firstError}`)
          }
        }
      }

      const records: BenchRecord[] = CASES.flatMap((shape, index) => {
        const of = (kind: ServerKind, metric: (b: Burst) => number) => {
          const values = samples.get(`${index}/${kind}`)!.map(metric).filter(Number.isFinite)
          return values.length ? summarize(values) : null
        }
        const total = (kind: ServerKind) => {
          const sum = samples.get(`${index}/${kind}`)!.reduce((n, b) => n + b.errors, 0)
          return {median: sum, min: sum, max: sum, runs}
        }
        const name = `${shape.count} concurrent × ${formatBytes(shape.size)}`
        const base = {suite: SUITE, baselineName: 'plain @tus/server', reproduce}
        return [
          compare({...base, name: `${name}: throughput`, unit: 'uploads/s', better: 'higher', goal: {ratio: 1, text: '>= 1.0x plain @tus/server'}}, of('ours', (b) => b.uploadsPerSecond), of('plainTus', (b) => b.uploadsPerSecond)),
          compare({...base, name: `${name}: p50 latency`, unit: 'ms', better: 'lower'}, of('ours', (b) => b.p50), of('plainTus', (b) => b.p50)),
          compare({...base, name: `${name}: p99 latency`, unit: 'ms', better: 'lower', goal: {ratio: 1, text: '<= 1.0x plain @tus/server'}}, of('ours', (b) => b.p99), of('plainTus', (b) => b.p99)),
          compare({...base, name: `${name}: errors (all runs)`, unit: 'errors', better: 'lower', goal: {oursAtMost: 0, text: '0 errors'}}, total('ours'), total('plainTus')),
          compare({...base, name: `${name}: server peak RSS`, unit: 'MiB', better: 'lower', goal: {ratio: 1.2, text: '<= 1.2x plain @tus/server'}}, of('ours', (b) => b.peakRssMiB), of('plainTus', (b) => b.peakRssMiB)),
        ]
      })
      return {settings: {runs, cases: CASES.map((c) => `${c.count} × ${formatBytes(c.size)}`).join(', ')}, records, notes}
    } finally {
      await Promise.allSettled(servers.map((s) => s.stop()))
    }
  } finally {
    await workspace.remove()
  }
})
