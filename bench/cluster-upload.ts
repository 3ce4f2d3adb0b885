/**
 * Issue 6 "Done when": one upload (512 MiB, BENCH_SIZE; 8 MiB chunks, BENCH_CHUNK) through
 * haproxy to a node that does not own it, so every PATCH is streamed through to the owner,
 * against the same client sending the same bytes straight to the owner. Goal: at least 0.8.
 *
 * Three compiled nodes, one PostgreSQL schema; each upload is created on node1 (its owner).
 * Routes, each measured in every repetition, in alternating order:
 * - forwarded: haproxy (deploy/haproxy.cfg) whose three backends are all node2, so every request
 *   lands on a non-owner and is forwarded to node1;
 * - owner direct: the client to node1, no proxy (the baseline);
 * - owner via haproxy: haproxy whose backends are all node1 (the proxy without the forwarding);
 * - round-robin: haproxy over node1, node2, node3 as deployed (2 of 3 PATCHes forwarded).
 * Each upload's recorded sha256 is checked against the input's; its bytes are removed after.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {startCluster, type BenchCluster} from './lib/cluster.js'
import {formatBytes, MiB} from './lib/format.js'
import {TusClient} from './lib/http-client.js'
import {createWorkspace, generateFile, requireFreeSpace} from './lib/input.js'
import {compare, type BenchRecord} from './lib/results.js'
import {envPrefix, settings} from './lib/settings.js'
import {summarize} from './lib/stats.js'
import {alternating, progress, runSuite} from './lib/suite.js'

const SUITE = 'cluster-upload'
const reproduce = `npm run build && ${envPrefix(['BENCH_SIZE', 'BENCH_CHUNK', 'BENCH_RUNS'])}npm run bench -- ${SUITE}`

type Route = 'forwarded' | 'ownerDirect' | 'ownerViaHaproxy' | 'roundRobin'
const LABELS: Record<Route, string> = {
  forwarded: 'via haproxy to a non-owner (forwarded)',
  ownerDirect: 'direct to the owner',
  ownerViaHaproxy: 'via haproxy to the owner',
  roundRobin: 'via haproxy round-robin over 3 nodes',
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20})) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Created on the owner; every PATCH sent to `base` (the same client for every route). */
async function uploadVia(ownerUrl: string, base: string, file: string, size: number, chunk: number): Promise<string> {
  const client = new TusClient(`${ownerUrl}/files/`)
  try {
    const id = (await client.create(size)).pathname.split('/').at(-1)!
    const upload = new URL(`/files/${id}`, base)
    for (let offset = 0; offset < size; ) {
      const length = Math.min(chunk, size - offset)
      offset = await client.patch(upload, offset, length, createReadStream(file, {start: offset, end: offset + length - 1, highWaterMark: 1 << 20}))
    }
    return id
  } finally {
    client.close()
  }
}

async function recordedSha256(cluster: BenchCluster, id: string): Promise<string | null> {
  for (let i = 0; i < 50; i++) {
    const {rows} = await cluster.db.query('SELECT sha256 FROM uploads WHERE id = $1', [id])
    const value = (rows[0] as {sha256: string | null} | undefined)?.sha256 ?? null
    if (value) return value
    await new Promise((r) => setTimeout(r, 100))
  }
  return null
}

await runSuite(SUITE, async () => {
  const size = settings.clusterUploadSize
  const chunk = settings.clusterUploadChunk
  const runs = settings.clusterUploadRuns
  const workspace = await createWorkspace('bench-cluster-upload')
  const loadBefore = os.loadavg()
  let cluster: BenchCluster | undefined
  try {
    await requireFreeSpace(workspace.dir, 2 * size, `${SUITE} (BENCH_SIZE=${formatBytes(size)})`)
    const input = path.join(workspace.dir, 'input.bin')
    progress(SUITE, `generating a ${formatBytes(size)} input`)
    await generateFile(input, size)
    const expected = await sha256File(input)

    progress(SUITE, 'starting 3 nodes and haproxy')
    cluster = await startCluster(path.join(workspace.dir, 'cluster'))
    const live = cluster
    const [n1, n2, n3] = live.nodes.map((n) => n.url) as [string, string, string]
    const toNonOwner = await live.haproxy([n2, n2, n2])
    const toOwner = await live.haproxy([n1, n1, n1])
    const roundRobin = await live.haproxy([n1, n2, n3])
    const bases: Record<Route, string> = {forwarded: toNonOwner.url, ownerDirect: n1, ownerViaHaproxy: toOwner.url, roundRobin: roundRobin.url}
    const routes = Object.keys(bases) as Route[]

    const once = async (route: Route): Promise<number> => {
      const started = performance.now()
      const id = await uploadVia(n1, bases[route], input, size, chunk)
      const seconds = (performance.now() - started) / 1000
      const recorded = await recordedSha256(live, id)
      if (recorded !== expected) throw new Error(`${LABELS[route]}: upload ${id} recorded sha256 ${recorded}, expected ${expected}`)
      await live.clearUploads(0)
      return size / MiB / seconds
    }

    // Warm-up, not measured: connections (client, haproxy, peer agent), JIT.
    for (const route of routes) {
      const warm = Math.min(size, 64 * MiB)
      await uploadVia(n1, bases[route], input, warm, chunk)
      await live.clearUploads(0)
    }

    const samples = new Map<Route, number[]>()
    const loads: number[] = []
    for (let run = 0; run < runs; run++) {
      for (const route of alternating(routes, run)) {
        loads.push(os.loadavg()[0]!)
        const mibPerSecond = await once(route)
        samples.set(route, [...(samples.get(route) ?? []), mibPerSecond])
        progress(SUITE, `run ${run + 1}/${runs}, ${LABELS[route]}: ${mibPerSecond.toFixed(0)} MiB/s`)
      }
    }

    const summary = (route: Route) => summarize(samples.get(route)!)
    const name = `${formatBytes(size)} upload in ${formatBytes(chunk)} chunks`
    const base = {suite: SUITE, unit: 'MiB/s', better: 'higher' as const, reproduce}
    const records: BenchRecord[] = [
      compare(
        {...base, name: `${name}: to a non-owner via haproxy vs direct to the owner`, baselineName: 'direct to the owner', goal: {ratio: 0.8, text: '>= 0.8 of direct to the owner'}},
        summary('forwarded'),
        summary('ownerDirect')
      ),
      compare({...base, name: `${name}: to a non-owner via haproxy vs to the owner via haproxy`, baselineName: 'owner via haproxy'}, summary('forwarded'), summary('ownerViaHaproxy')),
      compare({...base, name: `${name}: haproxy round-robin over 3 nodes vs direct to the owner`, baselineName: 'direct to the owner'}, summary('roundRobin'), summary('ownerDirect')),
    ]
    const loadAfter = os.loadavg()
    return {
      settings: {size: formatBytes(size), chunk: formatBytes(chunk), runs, routes: routes.map((r) => LABELS[r]).join('; ')},
      records,
      notes: [
        'Every upload is created on node1 (its owner) by the same raw node:http tus client; only where its PATCHes go differs. "Non-owner via haproxy": deploy/haproxy.cfg with all three backends set to node2, so each PATCH goes client → haproxy → node2 → node1.',
        `Load average (1 min) at the start of each timed upload: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}; before the suite ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(1)).join(' ')} (${os.cpus().length} CPUs, shared with other work).`,
      ],
    }
  } finally {
    await cluster?.stop().catch((error: unknown) => progress(SUITE, `cluster cleanup failed: ${String(error)}`))
    await workspace.remove()
  }
})
