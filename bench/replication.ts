/**
 * Issues 6, 9 (point 5) and 19: fan-out of one 1 GiB artifact (BENCH_REPLICATION_SIZE) and of a
 * whole HLS folder of small files (BENCH_HLS_RENDITIONS × BENCH_HLS_SEGMENTS segments of
 * ~BENCH_HLS_SEGMENT_SIZE, plus playlists) from node1 to its 2 peers, against rsync pushing the
 * same directory to an rsync daemon on each peer (both peers at once on each side), on two
 * testbeds (BENCH_TESTBED=loopback|network|both, default both):
 * - loopback: everything on 127.0.0.1, sharing the machine's cores;
 * - network: three hosts in network namespaces, each link shaped to BENCH_LINK_RATE (default
 *   1gbit) by tc (test/support/netns.ts); node i and rsync's end for it run in host i. Where
 *   namespaces cannot be made (not root), the suite says so and measures loopback only.
 *
 * Ours: three compiled nodes sharing a fresh PostgreSQL schema, the artifacts written under
 * node1's media directory and inserted into `artifacts` (as the media consumers leave them).
 * The timed part is one `Replicator.replicateUpload` pass run by node1's worker process
 * (bench/tools/replication-worker.ts, in node1's host: what node1's fan-out consumer runs on
 * artifact.created), until it returns, i.e. until both peers have answered that they verified
 * the copy (by its wire hash, xxHash3-128) and recorded their replica. The nodes' periodic
 * catch-up is off, so nothing else sends. Every repetition starts cold: the peers' copies and
 * their `replicas` rows are deleted (for rsync, the target directories emptied), then `sync`,
 * untimed.
 */
import {execFileSync, spawn} from 'node:child_process'
import {once} from 'node:events'
import {createHash} from 'node:crypto'
import {mkdir, readdir, rm, stat, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {createReadStream} from 'node:fs'
import {wireHasher} from '../src/media/wire-hash.js'
import {createTestbed, testbedUnavailable, type Testbed} from '../test/support/netns.js'
import {CLUSTER_SECRET, startCluster, type BenchCluster} from './lib/cluster.js'
import {formatBytes, MiB} from './lib/format.js'
import {createWorkspace, generateFile, randomBuffer, requireFreeSpace} from './lib/input.js'
import {BENCH_DIR, compare, type BenchRecord} from './lib/results.js'
import {rsyncPush, startRsyncDaemon, type RsyncDaemon} from './lib/rsync-daemon.js'
import {envPrefix, settings} from './lib/settings.js'
import {summarize} from './lib/stats.js'
import {alternating, progress, runSuite} from './lib/suite.js'
import type {WorkerAnswer, WorkerSettings} from './tools/replication-worker.js'

const SUITE = 'replication'
const PEERS = [1, 2] as const
const reproduce = `npm run build && ${envPrefix(['BENCH_TESTBED', 'BENCH_LINK_RATE', 'BENCH_REPLICATION_SIZE', 'BENCH_HLS_RENDITIONS', 'BENCH_HLS_SEGMENTS', 'BENCH_HLS_SEGMENT_SIZE', 'BENCH_REPLICATION_CHAIN', 'BENCH_RUNS'])}npm run bench -- ${SUITE}`

interface ArtifactFile {
  path: string
  kind: 'mp4' | 'hls'
  rendition: string
  contentType: string
  size: number
  sha256: string
  /** The wire hash receivers verify copies by (src/media/wire-hash.ts), as describeFile takes it. */
  xxh128: string
}

interface Scenario {
  label: string
  uploadId: string
  files: ArtifactFile[]
  bytes: number
  goal: {ratio: number; text: string}
  /** Over shaped links, where node1's own link is what every copy must cross (issue 19). */
  networkGoal: {ratio: number; text: string}
}

async function hashesOf(file: string): Promise<{sha256: string; xxh128: string}> {
  const hash = createHash('sha256')
  const wire = await wireHasher()
  for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20})) {
    hash.update(chunk as Buffer)
    wire.update(chunk as Buffer)
  }
  return {sha256: hash.digest('hex'), xxh128: wire.digest('hex')}
}

/** Files under node1's media directory for `uploadId`, and their rows in `artifacts`. */
async function placeArtifacts(cluster: BenchCluster, uploadId: string, files: ArtifactFile[]): Promise<void> {
  for (const file of files) {
    await cluster.db.query(
      `INSERT INTO artifacts (upload_id, kind, rendition, path, size, sha256, xxh128, content_type, node_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'node1', now(), now())`,
      [uploadId, file.kind, file.rendition, file.path, file.size, file.sha256, file.xxh128, file.contentType]
    )
  }
}

async function bigArtifact(cluster: BenchCluster, size: number): Promise<Scenario> {
  const uploadId = await cluster.placeholderUpload(0)
  const file = path.join(cluster.dataDirs[0]!, 'media', uploadId, 'video.mp4')
  await mkdir(path.dirname(file), {recursive: true})
  await generateFile(file, size)
  const files: ArtifactFile[] = [{path: 'video.mp4', kind: 'mp4', rendition: '', contentType: 'video/mp4', size, ...(await hashesOf(file))}]
  await placeArtifacts(cluster, uploadId, files)
  return {label: `${formatBytes(size)} artifact`, uploadId, files, bytes: size, goal: {ratio: 1, text: 'faster than rsync (time ratio <= 1)'}, networkGoal: {ratio: 0.6, text: 'time ratio <= 0.6'}}
}

/** Renditions of segments a little smaller or larger than the nominal size, each with its playlist, and a master playlist. */
async function hlsFolder(cluster: BenchCluster): Promise<Scenario> {
  const uploadId = await cluster.placeholderUpload(0)
  const root = path.join(cluster.dataDirs[0]!, 'media', uploadId)
  const renditions = ['1080p', '720p', '480p', '360p', '240p', '144p'].slice(0, settings.hlsRenditions)
  while (renditions.length < settings.hlsRenditions) renditions.push(`r${renditions.length}`)
  const files: ArtifactFile[] = []
  const put = async (relative: string, data: Buffer, kind: 'hls', rendition: string, contentType: string) => {
    await mkdir(path.dirname(path.join(root, relative)), {recursive: true})
    await writeFile(path.join(root, relative), data)
    const wire = await wireHasher()
    files.push({path: relative, kind, rendition, contentType, size: data.length, sha256: createHash('sha256').update(data).digest('hex'), xxh128: wire.update(data).digest('hex')})
  }
  for (const rendition of renditions) {
    const playlist = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:4', '#EXT-X-PLAYLIST-TYPE:VOD']
    for (let i = 0; i < settings.hlsSegments; i++) {
      const name = `segment_${String(i).padStart(4, '0')}.ts`
      const size = Math.round(settings.hlsSegmentSize * (0.75 + Math.random() / 2))
      await put(`${rendition}/${name}`, randomBuffer(size), 'hls', rendition, 'video/mp2t')
      playlist.push('#EXTINF:4.000,', name)
    }
    playlist.push('#EXT-X-ENDLIST')
    await put(`${rendition}/index.m3u8`, Buffer.from(`${playlist.join('\n')}\n`), 'hls', rendition, 'application/vnd.apple.mpegurl')
  }
  const master = ['#EXTM3U', ...renditions.flatMap((r) => [`#EXT-X-STREAM-INF:BANDWIDTH=1000000,NAME="${r}"`, `${r}/index.m3u8`])]
  await put('master.m3u8', Buffer.from(`${master.join('\n')}\n`), 'hls', '', 'application/vnd.apple.mpegurl')
  await placeArtifacts(cluster, uploadId, files)
  const bytes = files.reduce((sum, f) => sum + f.size, 0)
  return {
    label: `HLS folder (${files.length} files, ${formatBytes(bytes)})`,
    uploadId,
    files,
    bytes,
    goal: {ratio: 0.5, text: 'at least 2x rsync (time ratio <= 0.5)'},
    networkGoal: {ratio: 0.5, text: 'time ratio <= 0.5'},
  }
}

/** node1's fan-out worker (bench/tools/replication-worker.ts), inside node1's host on the network testbed. */
async function startWorker(cluster: BenchCluster, testbed: Testbed | undefined) {
  const settingsJson = JSON.stringify({
    nodeUrl: cluster.nodes[0]!.url,
    dataDir: cluster.dataDirs[0]!,
    databaseUrl: testbed ? testbed.databaseUrl(settings.databaseUrl) : settings.databaseUrl,
    databaseSchema: cluster.schema,
    clusterSecret: CLUSTER_SECRET,
  } satisfies WorkerSettings)
  const profile = settings.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDir] : []
  const argv = [...profile, '--import', 'tsx', path.join(BENCH_DIR, 'tools', 'replication-worker.ts'), settingsJson]
  const [command, args] = testbed ? testbed.hosts[0]!.exec(process.execPath, argv) : [process.execPath, argv]
  const child = spawn(command, args, {cwd: path.dirname(BENCH_DIR), stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`node1's replication worker exited (${code}) before it was ready`)))
  })
  return {
    replicate(uploadId: string): Promise<Extract<WorkerAnswer, {seconds: number}>> {
      return new Promise((resolve, reject) => {
        child.once('message', (answer: WorkerAnswer) => ('error' in answer ? reject(new Error(`replication pass: ${answer.error}`)) : resolve(answer)))
        child.send({uploadId})
      })
    },
    close: async () => {
      if (child.exitCode !== null) return
      child.disconnect()
      await once(child, 'exit')
    },
  }
}

/** Walks a directory: [file count, total bytes]. */
async function tally(dir: string): Promise<[number, number]> {
  let files = 0
  let bytes = 0
  for (const entry of await readdir(dir, {withFileTypes: true, recursive: true})) {
    if (!entry.isFile()) continue
    files++
    bytes += (await stat(path.join(entry.parentPath, entry.name))).size
  }
  return [files, bytes]
}

const syncDisks = () => execFileSync('sync')

interface Measured {
  records: BenchRecord[]
  notes: string[]
}

/** Both sides on one testbed (undefined: loopback): start, generate, warm up, measure, clean up. */
async function measureOn(testbed: Testbed | undefined, workDir: string): Promise<Measured> {
  const runs = settings.replicationRuns
  const where = testbed ? `over ${testbed.rate} links (network namespaces)` : 'on loopback'
  const loadBefore = os.loadavg()
  let cluster: BenchCluster | undefined
  const daemons: RsyncDaemon[] = []
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined
  try {
    progress(SUITE, `starting 3 nodes ${where} (REPLICATION_RECONCILE_INTERVAL=0: only the measured pass sends)`)
    cluster = await startCluster(path.join(workDir, 'cluster'), {REPLICATION_RECONCILE_INTERVAL: '0'}, testbed)
    const live = cluster
    const rsyncDirs = PEERS.map((i) => path.join(workDir, 'rsync', live.ids[i]!))
    for (const dir of rsyncDirs) await mkdir(dir, {recursive: true})
    // One daemon per peer, in the peer's host; on loopback one daemon serves both modules.
    if (testbed) for (const [k, i] of PEERS.entries()) daemons.push(await startRsyncDaemon(workDir, {[live.ids[i]!]: rsyncDirs[k]!}, testbed.hosts[i]))
    else daemons.push(await startRsyncDaemon(workDir, Object.fromEntries(PEERS.map((i, k) => [live.ids[i]!, rsyncDirs[k]!]))))
    const moduleUrl = (k: number, i: number) => daemons[testbed ? k : 0]!.moduleUrl(live.ids[i]!)
    worker = await startWorker(live, testbed)
    const pass = worker

    progress(SUITE, `generating the ${formatBytes(settings.replicationSize)} artifact and the HLS folder on node1`)
    const scenarios = [await bigArtifact(live, settings.replicationSize), await hlsFolder(live)]

    const makeCold = async (scenario: Scenario) => {
      await live.db.query(`DELETE FROM replicas WHERE node_id <> 'node1' AND artifact_id IN (SELECT id FROM artifacts WHERE upload_id = $1)`, [scenario.uploadId])
      for (const i of PEERS) await rm(path.join(live.dataDirs[i]!, 'media', scenario.uploadId), {recursive: true, force: true})
      for (const dir of rsyncDirs) await rm(path.join(dir, scenario.uploadId), {recursive: true, force: true})
      syncDisks()
    }
    const sides = {
      async ours(scenario: Scenario) {
        const report = await pass.replicate(scenario.uploadId)
        if (report.failed.length > 0) throw new Error(`replication failed: ${JSON.stringify(report.failed.slice(0, 3))}`)
        if (report.sent !== scenario.files.length * PEERS.length) throw new Error(`replication sent ${report.sent} copies, expected ${scenario.files.length * PEERS.length}`)
      },
      async rsync(scenario: Scenario) {
        const source = path.join(live.dataDirs[0]!, 'media', scenario.uploadId)
        await Promise.all(PEERS.map((i, k) => rsyncPush(source, `${moduleUrl(k, i)}${scenario.uploadId}/`, testbed?.hosts[0])))
      },
    }
    /** Untimed: every copy is where it should be, complete. */
    const check = async (side: 'ours' | 'rsync', scenario: Scenario) => {
      if (side === 'ours') {
        const {rows} = await live.db.query(
          `SELECT count(*)::int AS n FROM replicas r JOIN artifacts a ON a.id = r.artifact_id WHERE a.upload_id = $1 AND r.node_id <> 'node1' AND r.sha256 = a.sha256`,
          [scenario.uploadId]
        )
        if ((rows[0] as {n: number}).n !== scenario.files.length * PEERS.length) throw new Error(`only ${(rows[0] as {n: number}).n} verified replicas recorded`)
      }
      const dirs = side === 'ours' ? PEERS.map((i) => path.join(live.dataDirs[i]!, 'media', scenario.uploadId)) : rsyncDirs.map((d) => path.join(d, scenario.uploadId))
      for (const dir of dirs) {
        const [files, bytes] = await tally(dir)
        if (files !== scenario.files.length || bytes !== scenario.bytes) throw new Error(`${side}: ${dir} holds ${files} files / ${bytes} bytes, expected ${scenario.files.length} / ${scenario.bytes}`)
      }
    }

    // Warm-up, not measured: connections, JIT, the daemon's first fork, the source in the page cache.
    for (const scenario of scenarios) {
      for (const side of ['ours', 'rsync'] as const) {
        await makeCold(scenario)
        await sides[side](scenario)
        await check(side, scenario)
        if (side === 'ours' && scenario === scenarios[0]) {
          // The big artifact's copies checked once end to end (the peers verified them already).
          for (const i of PEERS) {
            const {sha256: digest} = await hashesOf(path.join(live.dataDirs[i]!, 'media', scenario.uploadId, 'video.mp4'))
            if (digest !== scenario.files[0]!.sha256) throw new Error(`${live.ids[i]}'s copy of the big artifact has the wrong sha256`)
          }
        }
      }
    }

    const samples = new Map<string, number[]>()
    const loads: number[] = []
    for (let run = 0; run < runs; run++) {
      for (const scenario of scenarios) {
        for (const side of alternating(['ours', 'rsync'] as const, run)) {
          await makeCold(scenario)
          loads.push(os.loadavg()[0]!)
          const started = performance.now()
          await sides[side](scenario)
          const seconds = (performance.now() - started) / 1000
          await check(side, scenario)
          const key = `${scenario.label}/${side}`
          samples.set(key, [...(samples.get(key) ?? []), seconds])
          progress(SUITE, `${where}, run ${run + 1}/${runs}, ${scenario.label}, ${side}: ${seconds.toFixed(2)} s (${((scenario.bytes * PEERS.length) / MiB / seconds).toFixed(0)} MiB/s delivered)`)
        }
      }
    }

    // What a pass costs when every peer already holds every copy: planning (the database) alone.
    await makeCold(scenarios[1]!)
    await sides.ours(scenarios[1]!)
    const noopSeconds = (await pass.replicate(scenarios[1]!.uploadId)).seconds

    const records: BenchRecord[] = scenarios.map((scenario) =>
      compare(
        {
          suite: SUITE,
          name: testbed ? `fan-out to 2 peers over ${testbed.rate} links, ${scenario.label}` : `fan-out to 2 peers, ${scenario.label}`,
          unit: 's',
          better: 'lower',
          baselineName: testbed ? `rsync -a to a daemon on each peer, ${testbed.rate} links` : 'rsync -a to a daemon on loopback',
          goal: testbed ? scenario.networkGoal : scenario.goal,
          reproduce,
        },
        summarize(samples.get(`${scenario.label}/ours`)!),
        summarize(samples.get(`${scenario.label}/rsync`)!)
      )
    )
    const loadAfter = os.loadavg()
    const delivered = (s: Scenario, side: string) => ((s.bytes * PEERS.length) / MiB / summarize(samples.get(`${s.label}/${side}`)!).median).toFixed(0)
    return {
      records,
      notes: [
        ...scenarios.map((s) => `${where}, ${s.label}: ${delivered(s, 'ours')} MiB/s delivered (2 peers) ours, ${delivered(s, 'rsync')} MiB/s rsync (medians).`),
        `${where}: a pass over the HLS folder with nothing left to send took ${noopSeconds.toFixed(2)} s (${scenarios[1]!.files.length} artifacts: planning from the database alone).`,
        `${where}: load average (1 min) at the start of each timed run: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}; before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(1)).join(' ')} (${os.cpus().length} CPUs, shared with other work).`,
      ],
    }
  } finally {
    await worker?.close().catch(() => {})
    for (const daemon of daemons) await daemon.stop().catch(() => {})
    await cluster?.stop().catch((error: unknown) => progress(SUITE, `cluster cleanup failed: ${String(error)}`))
  }
}

await runSuite(SUITE, async () => {
  const workspace = await createWorkspace('bench-replication')
  const notes: string[] = []
  const records: BenchRecord[] = []
  try {
    const hlsBytes = settings.hlsRenditions * settings.hlsSegments * settings.hlsSegmentSize * 1.25
    // The source once, two peers' copies for ours and two for rsync at most.
    await requireFreeSpace(workspace.dir, 5 * (settings.replicationSize + hlsBytes), `${SUITE} (BENCH_REPLICATION_SIZE=${formatBytes(settings.replicationSize)})`)
    const wanted = settings.replicationTestbed
    if (wanted !== 'network') {
      const loopback = await measureOn(undefined, path.join(workspace.dir, 'loopback'))
      records.push(...loopback.records)
      notes.push(...loopback.notes)
    }
    if (wanted !== 'loopback') {
      const unavailable = testbedUnavailable()
      if (unavailable) {
        notes.push(`network testbed not measured: ${unavailable}`)
        progress(SUITE, `NOT measuring the network testbed: ${unavailable}`)
      } else {
        const testbed = await createTestbed({hosts: 3, rate: settings.linkRate, database: {host: '127.0.0.1', port: Number(new URL(settings.databaseUrl).port || 5432)}})
        try {
          const network = await measureOn(testbed, path.join(workspace.dir, 'network'))
          records.push(...network.records)
          notes.push(...network.notes)
        } finally {
          await testbed.stop()
        }
      }
    }
    return {
      settings: {
        bigArtifact: formatBytes(settings.replicationSize),
        hlsFolder: `${settings.hlsRenditions} renditions × ${settings.hlsSegments} segments of ~${formatBytes(settings.hlsSegmentSize)} + playlists`,
        runs: settings.replicationRuns,
        peers: 2,
        testbeds: wanted,
        linkRate: settings.linkRate,
        measured: 'one Replicator.replicateUpload pass by node1\'s worker (catch-up off), until both peers verified and recorded every copy',
      },
      records,
      notes: [
        `Ours: 3 compiled nodes (dist/src/main.js), one PostgreSQL schema; the pass runs in node1's worker process (bench/tools/replication-worker.ts, what the fanout consumer runs), replicator concurrency 8 (its default). rsync: \`rsync -a <node1 dir>/ rsync://<peer>:<port>/<peer>/<upload>/\` to both peers at once, from node1's host. Each repetition cold (peer copies and replica rows deleted, then sync), untimed.`,
        ...notes,
      ],
    }
  } finally {
    await workspace.remove()
  }
})
