/**
 * Issue 6 "Done when" and issue 9 point 5: fan-out of one 1 GiB artifact (BENCH_REPLICATION_SIZE)
 * and of a whole HLS folder of small files (BENCH_HLS_RENDITIONS × BENCH_HLS_SEGMENTS segments of
 * ~BENCH_HLS_SEGMENT_SIZE, plus playlists) from node1 to its 2 peers, against rsync pushing the
 * same directory to 2 modules of an rsync daemon on loopback (both peers at once on each side).
 *
 * Ours: three compiled nodes sharing a fresh PostgreSQL schema, the artifacts written under
 * node1's media directory and inserted into `artifacts` (as the media consumers leave them).
 * The timed part is one `Replicator.replicateUpload` pass run by this process acting as node1
 * (its NODE_ID, DATA_DIR and schema: what node1's fan-out consumer runs on artifact.created),
 * until it returns, i.e. until both peers have answered that they verified the sha256 and
 * recorded their replica. The nodes' periodic catch-up is off, so nothing else sends.
 * Every repetition starts cold: the peers' copies and their `replicas` rows are deleted (for
 * rsync, the target directories emptied), then `sync`, untimed.
 * Goals: faster than rsync on the big file; at least 2x rsync on the folder.
 */
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, readdir, rm, stat, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {createReadStream} from 'node:fs'
import {loadConfig} from '../src/config/index.js'
import {createCluster} from '../src/cluster/index.js'
import {openDatabase} from '../src/db/database.js'
import {createLogger} from '../src/logger.js'
import {CLUSTER_SECRET, startCluster, type BenchCluster} from './lib/cluster.js'
import {formatBytes, MiB} from './lib/format.js'
import {createWorkspace, generateFile, randomBuffer, requireFreeSpace} from './lib/input.js'
import {compare, type BenchRecord} from './lib/results.js'
import {rsyncPush, startRsyncDaemon, type RsyncDaemon} from './lib/rsync-daemon.js'
import {envPrefix, settings} from './lib/settings.js'
import {summarize} from './lib/stats.js'
import {alternating, progress, runSuite} from './lib/suite.js'

const SUITE = 'replication'
const PEERS = [1, 2] as const
const reproduce = `npm run build && ${envPrefix(['BENCH_REPLICATION_SIZE', 'BENCH_HLS_RENDITIONS', 'BENCH_HLS_SEGMENTS', 'BENCH_HLS_SEGMENT_SIZE', 'BENCH_RUNS'])}npm run bench -- ${SUITE}`

interface ArtifactFile {
  path: string
  kind: 'mp4' | 'hls'
  rendition: string
  contentType: string
  size: number
  sha256: string
}

interface Scenario {
  label: string
  uploadId: string
  files: ArtifactFile[]
  bytes: number
  goal: {ratio: number; text: string}
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20})) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Files under node1's media directory for `uploadId`, and their rows in `artifacts`. */
async function placeArtifacts(cluster: BenchCluster, uploadId: string, files: ArtifactFile[]): Promise<void> {
  for (const file of files) {
    await cluster.db.query(
      `INSERT INTO artifacts (upload_id, kind, rendition, path, size, sha256, content_type, node_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'node1', now(), now())`,
      [uploadId, file.kind, file.rendition, file.path, file.size, file.sha256, file.contentType]
    )
  }
}

async function bigArtifact(cluster: BenchCluster, size: number): Promise<Scenario> {
  const uploadId = await cluster.placeholderUpload(0)
  const file = path.join(cluster.dataDirs[0]!, 'media', uploadId, 'video.mp4')
  await mkdir(path.dirname(file), {recursive: true})
  await generateFile(file, size)
  const files: ArtifactFile[] = [{path: 'video.mp4', kind: 'mp4', rendition: '', contentType: 'video/mp4', size, sha256: await sha256File(file)}]
  await placeArtifacts(cluster, uploadId, files)
  return {label: `${formatBytes(size)} artifact`, uploadId, files, bytes: size, goal: {ratio: 1, text: 'faster than rsync (time ratio <= 1)'}}
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
    files.push({path: relative, kind, rendition, contentType, size: data.length, sha256: createHash('sha256').update(data).digest('hex')})
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
  }
}

/** This process as node1's fan-out worker: node1's identity, data directory and schema. */
async function node1Replicator(cluster: BenchCluster) {
  const config = loadConfig(
    {},
    {
      nodeId: 'node1',
      nodeUrl: cluster.nodes[0]!.url,
      dataDir: cluster.dataDirs[0]!,
      databaseUrl: settings.databaseUrl,
      databaseSchema: cluster.schema,
      clusterSecret: CLUSTER_SECRET,
      nodeTtl: '60s',
      replicationReconcileInterval: 0,
      logLevel: 'warn',
    }
  )
  const db = await openDatabase(config)
  const parts = createCluster(config, db, createLogger({level: 'warn', pretty: false}), {id: 'node1', url: cluster.nodes[0]!.url})
  return {replicator: parts.replicator, close: () => db.destroy()}
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

await runSuite(SUITE, async () => {
  const runs = settings.replicationRuns
  const workspace = await createWorkspace('bench-replication')
  const loadBefore = os.loadavg()
  let cluster: BenchCluster | undefined
  let daemon: RsyncDaemon | undefined
  let worker: Awaited<ReturnType<typeof node1Replicator>> | undefined
  try {
    const hlsBytes = settings.hlsRenditions * settings.hlsSegments * settings.hlsSegmentSize * 1.25
    // The source once, two peers' copies for ours and two for rsync at most.
    await requireFreeSpace(workspace.dir, 5 * (settings.replicationSize + hlsBytes), `${SUITE} (BENCH_REPLICATION_SIZE=${formatBytes(settings.replicationSize)})`)
    progress(SUITE, 'starting 3 nodes (REPLICATION_RECONCILE_INTERVAL=0: only the measured pass sends)')
    cluster = await startCluster(path.join(workspace.dir, 'cluster'), {REPLICATION_RECONCILE_INTERVAL: '0'})
    const live = cluster
    const rsyncDirs = PEERS.map((i) => path.join(workspace.dir, 'rsync', live.ids[i]!))
    for (const dir of rsyncDirs) await mkdir(dir, {recursive: true})
    daemon = await startRsyncDaemon(workspace.dir, Object.fromEntries(PEERS.map((i, k) => [live.ids[i]!, rsyncDirs[k]!])))
    const rsyncd = daemon
    worker = await node1Replicator(live)
    const replicator = worker.replicator

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
        const report = await replicator.replicateUpload(scenario.uploadId)
        if (report.failed.length > 0) throw new Error(`replication failed: ${JSON.stringify(report.failed.slice(0, 3))}`)
        if (report.sent !== scenario.files.length * PEERS.length) throw new Error(`replication sent ${report.sent} copies, expected ${scenario.files.length * PEERS.length}`)
      },
      async rsync(scenario: Scenario) {
        const source = path.join(live.dataDirs[0]!, 'media', scenario.uploadId)
        await Promise.all(PEERS.map((i) => rsyncPush(source, `${rsyncd.moduleUrl(live.ids[i]!)}${scenario.uploadId}/`)))
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
            const digest = await sha256File(path.join(live.dataDirs[i]!, 'media', scenario.uploadId, 'video.mp4'))
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
          progress(SUITE, `run ${run + 1}/${runs}, ${scenario.label}, ${side}: ${seconds.toFixed(2)} s (${((scenario.bytes * PEERS.length) / MiB / seconds).toFixed(0)} MiB/s delivered)`)
        }
      }
    }

    // What a pass costs when every peer already holds every copy: planning (the database) alone.
    await makeCold(scenarios[1]!)
    await sides.ours(scenarios[1]!)
    const noop = performance.now()
    await replicator.replicateUpload(scenarios[1]!.uploadId)
    const noopSeconds = (performance.now() - noop) / 1000

    const records: BenchRecord[] = scenarios.map((scenario) =>
      compare(
        {
          suite: SUITE,
          name: `fan-out to 2 peers, ${scenario.label}`,
          unit: 's',
          better: 'lower',
          baselineName: 'rsync -a to a daemon on loopback',
          goal: scenario.goal,
          reproduce,
        },
        summarize(samples.get(`${scenario.label}/ours`)!),
        summarize(samples.get(`${scenario.label}/rsync`)!)
      )
    )
    const loadAfter = os.loadavg()
    const delivered = (s: Scenario, side: string) => ((s.bytes * PEERS.length) / MiB / summarize(samples.get(`${s.label}/${side}`)!).median).toFixed(0)
    return {
      settings: {
        bigArtifact: formatBytes(settings.replicationSize),
        hlsFolder: `${settings.hlsRenditions} renditions × ${settings.hlsSegments} segments of ~${formatBytes(settings.hlsSegmentSize)} + playlists`,
        runs,
        peers: 2,
        measured: 'one Replicator.replicateUpload pass as node1 (catch-up off), until both peers verified and recorded every copy',
      },
      records,
      notes: [
        `Ours: 3 compiled nodes (dist/src/main.js), one PostgreSQL schema; the pass runs in the benchmark process as node1 (what the fanout consumer runs), replicator concurrency 8 (its default). rsync: \`rsync -a <node1 dir>/ rsync://127.0.0.1:<port>/<peer>/<upload>/\` to both peers at once. Each repetition cold (peer copies and replica rows deleted, then sync), untimed.`,
        ...scenarios.map((s) => `${s.label}: ${delivered(s, 'ours')} MiB/s delivered (2 peers) ours, ${delivered(s, 'rsync')} MiB/s rsync (medians).`),
        `A pass over the HLS folder with nothing left to send took ${noopSeconds.toFixed(2)} s (${scenarios[1]!.files.length} artifacts: planning from the database alone).`,
        `Load average (1 min) at the start of each timed run: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}; before the suite ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(1)).join(' ')} (${os.cpus().length} CPUs, shared with other work).`,
      ],
    }
  } finally {
    await worker?.close().catch(() => {})
    await daemon?.stop().catch(() => {})
    await cluster?.stop().catch((error: unknown) => progress(SUITE, `cluster cleanup failed: ${String(error)}`))
    await workspace.remove()
  }
})
