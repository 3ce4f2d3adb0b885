/**
 * Issue 9, point 6: our node's peak RSS must not grow with the upload's size. A 100 MiB and a
 * 4 GiB upload, each in one PATCH (the case where any buffering would show), the server's
 * high-water mark reset before each; plain @tus/server measured the same way for reference.
 * BENCH_SKIP_4GIB=1 leaves out the 4 GiB case for a quick run.
 */
import path from 'node:path'
import {formatBytes, MiB} from './lib/format.js'
import {TusClient} from './lib/http-client.js'
import {createWorkspace, generateFile, requireFreeSpace} from './lib/input.js'
import {compare, type BenchRecord} from './lib/results.js'
import {startServersIn, type BenchServer, type ServerKind} from './lib/servers.js'
import {envPrefix, settings} from './lib/settings.js'
import {summarize} from './lib/stats.js'
import {alternating, progress, runSuite} from './lib/suite.js'

const SUITE = 'upload-memory'
const KINDS: ServerKind[] = ['ours', 'plainTus']
const FLAT = 1.2
const reproduce = `${envPrefix(['BENCH_SKIP_4GIB', 'BENCH_MEMORY_SMALL', 'BENCH_MEMORY_LARGE', 'BENCH_RUNS'])}npm run bench -- ${SUITE}`

async function peakDuringUpload(server: BenchServer, input: string, size: number): Promise<number> {
  const client = new TusClient(server.endpoint)
  try {
    server.rss.reset()
    const started = performance.now()
    await client.uploadFile(input, size, size)
    const peak = server.rss.read() / MiB
    progress(SUITE, `${formatBytes(size)}, ${server.label}: peak RSS ${peak.toFixed(0)} MiB (${(size / MiB / ((performance.now() - started) / 1000)).toFixed(0)} MiB/s)`)
    return peak
  } finally {
    client.close()
    await server.clearStorage()
  }
}

await runSuite(SUITE, async () => {
  const runs = settings.memoryRuns
  const small = settings.memorySmallSize
  const large = settings.skipHugeUpload ? undefined : settings.memoryLargeSize
  const sizes = large ? [small, large] : [small]
  const biggest = Math.max(...sizes)
  const workspace = await createWorkspace('bench-memory')
  try {
    await requireFreeSpace(workspace.dir, 2 * biggest, `${SUITE} (set BENCH_SKIP_4GIB=1 to leave out the 4 GiB upload)`)
    const input = path.join(workspace.dir, 'input.bin')
    progress(SUITE, `generating a ${formatBytes(biggest)} input`)
    await generateFile(input, biggest)

    const servers: BenchServer[] = []
    try {
      await startServersIn(workspace.dir, KINDS, servers)
      for (const server of servers) await peakDuringUpload(server, input, Math.min(small, 16 * MiB))

      const samples = new Map<string, number[]>()
      for (let run = 0; run < runs; run++) {
        for (const size of alternating(sizes, run)) {
          for (const server of alternating(servers, run)) {
            const key = `${size}/${server.kind}`
            samples.set(key, [...(samples.get(key) ?? []), await peakDuringUpload(server, input, size)])
          }
        }
      }

      const of = (size: number, kind: ServerKind) => summarize(samples.get(`${size}/${kind}`)!)
      const base = {suite: SUITE, unit: 'MiB', better: 'lower' as const, reproduce}
      const records: BenchRecord[] = sizes.map((size) =>
        compare({...base, name: `peak RSS, ${formatBytes(size)} upload in one PATCH`, baselineName: 'plain @tus/server'}, of(size, 'ours'), of(size, 'plainTus'))
      )
      if (large) {
        records.unshift(
          compare(
            {...base, name: `peak RSS of our node: ${formatBytes(large)} vs ${formatBytes(small)} upload`, baselineName: `ours, ${formatBytes(small)}`, goal: {ratio: FLAT, text: `flat: <= ${FLAT}× the ${formatBytes(small)} figure`}},
            of(large, 'ours'),
            of(small, 'ours')
          )
        )
      }
      const notes = large ? [] : [`The ${formatBytes(settings.memoryLargeSize)} upload was skipped (BENCH_SKIP_4GIB): flatness not measured.`]
      return {settings: {runs, sizes: sizes.map(formatBytes).join(', '), chunking: 'one PATCH'}, records, notes}
    } finally {
      await Promise.allSettled(servers.map((s) => s.stop()))
    }
  } finally {
    await workspace.remove()
  }
})
