/**
 * Issue 9, point 1 and issue 16, point 1: one large upload (1 GiB; BENCH_SIZE) in 2 MiB chunks
 * (tus-java-client's default), 8 MiB chunks, 64 MiB chunks and in one PATCH. Ours (full node,
 * PostgreSQL, hashing) against plain @tus/server + @tus/file-store and against the limit, a raw
 * node:http PUT into a file (same chunking, one PUT per chunk). Goal (issue 16): at least plain
 * @tus/server's throughput.
 */
import {createHash} from 'node:crypto'
import path from 'node:path'
import {formatBytes, MiB} from './lib/format.js'
import {RawPutClient, TusClient, type FileUploader} from './lib/http-client.js'
import {createWorkspace, generateFile, randomBuffer, requireFreeSpace} from './lib/input.js'
import {compare, type BenchRecord} from './lib/results.js'
import {startServersIn, type BenchServer, type ServerKind} from './lib/servers.js'
import {envPrefix, settings} from './lib/settings.js'
import {summarize} from './lib/stats.js'
import {alternating, progress, runSuite} from './lib/suite.js'

const SUITE = 'upload-throughput'
const KINDS: ServerKind[] = ['ours', 'plainTus', 'rawPut']
const reproduce = `${envPrefix(['BENCH_SIZE', 'BENCH_RUNS'])}npm run bench -- ${SUITE}`

const uploaderFor = (server: BenchServer): FileUploader =>
  server.kind === 'rawPut' ? new RawPutClient(server.endpoint) : new TusClient(server.endpoint)

/** Our node must have stored what it was sent: its recorded sha256 is checked once. */
async function checkOurDigest(server: BenchServer): Promise<void> {
  const client = new TusClient(server.endpoint)
  try {
    const bytes = randomBuffer(3 * MiB + 17)
    const upload = await client.uploadBuffer(bytes)
    const id = upload.pathname.split('/').at(-1)!
    const view = (await client.getJson(new URL(`/api/uploads/${id}`, server.baseUrl))) as {sha256: string | null}
    const expected = createHash('sha256').update(bytes).digest('hex')
    if (view.sha256 !== expected) throw new Error(`our node recorded sha256 ${view.sha256}, expected ${expected}`)
  } finally {
    client.close()
  }
}

await runSuite(SUITE, async () => {
  const size = settings.largeUploadSize
  const runs = settings.throughputRuns
  const modes = [
    {label: '2 MiB chunks', chunk: 2 * MiB},
    {label: '8 MiB chunks', chunk: 8 * MiB},
    {label: '64 MiB chunks', chunk: 64 * MiB},
    {label: 'one PATCH', chunk: size},
  ]
  const workspace = await createWorkspace('bench-throughput')
  try {
    // The input, plus one upload at a time on the server side (each is removed after its run).
    await requireFreeSpace(workspace.dir, 2 * size, `${SUITE} (BENCH_SIZE=${formatBytes(size)})`)
    const input = path.join(workspace.dir, 'input.bin')
    progress(SUITE, `generating a ${formatBytes(size)} input`)
    await generateFile(input, size)

    const servers: BenchServer[] = []
    try {
      await startServersIn(workspace.dir, KINDS, servers)
      await checkOurDigest(servers[0]!)
      // Warm-up, not measured: JIT, connection pools, first-touch of the files directory.
      for (const server of servers) {
        const uploader = uploaderFor(server)
        await uploader.uploadFile(input, Math.min(size, 64 * MiB), 8 * MiB)
        uploader.close()
        await server.clearStorage()
      }

      const samples = new Map<string, number[]>()
      for (let run = 0; run < runs; run++) {
        for (const mode of modes) {
          for (const server of alternating(servers, run)) {
            const uploader = uploaderFor(server)
            const started = performance.now()
            await uploader.uploadFile(input, size, mode.chunk)
            const seconds = (performance.now() - started) / 1000
            uploader.close()
            await server.clearStorage()
            const mibPerSecond = size / MiB / seconds
            const key = `${mode.label}/${server.kind}`
            samples.set(key, [...(samples.get(key) ?? []), mibPerSecond])
            progress(SUITE, `run ${run + 1}/${runs}, ${mode.label}, ${server.label}: ${mibPerSecond.toFixed(0)} MiB/s`)
          }
        }
      }

      const summary = (mode: string, kind: ServerKind) => summarize(samples.get(`${mode}/${kind}`)!)
      const records: BenchRecord[] = modes.flatMap((mode) => {
        const base = {suite: SUITE, unit: 'MiB/s', better: 'higher' as const, reproduce}
        const name = `${formatBytes(size)} upload, ${mode.label}`
        return [
          compare({...base, name: `${name}: vs plain @tus/server`, baselineName: 'plain @tus/server', goal: {ratio: 1, text: '>= 1.0x plain @tus/server'}}, summary(mode.label, 'ours'), summary(mode.label, 'plainTus')),
          compare({...base, name: `${name}: vs the limit`, baselineName: 'raw PUT'}, summary(mode.label, 'ours'), summary(mode.label, 'rawPut')),
        ]
      })
      return {
        settings: {size: formatBytes(size), runs, chunks: modes.map((m) => m.label).join(', ')},
        records,
      }
    } finally {
      await Promise.allSettled(servers.map((s) => s.stop()))
    }
  } finally {
    await workspace.remove()
  }
})
