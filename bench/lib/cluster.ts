/**
 * A cluster for the cluster suites: three compiled nodes (dist/src/main.js, as the cluster tests
 * start them) on 127.0.0.1 or each in a host of a network testbed (test/support/netns.ts), one
 * fresh PostgreSQL schema, CLUSTER_SECRET set, each node with its
 * own data directory; plus Debian's haproxy with deploy/haproxy.cfg in front of any three node
 * addresses. Everything is stopped and the schema dropped by stop(), even after a failure.
 */
import {randomBytes} from 'node:crypto'
import {mkdir, readdir, rm} from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import {startHaproxy, type Haproxy} from '../../test/support/haproxy.js'
import type {Testbed} from '../../test/support/netns.js'
import {freePort, spawnNode, type NodeProcess} from '../../test/support/process-node.js'
import {settings} from './settings.js'

export const CLUSTER_SECRET = `bench-cluster-secret-${randomBytes(16).toString('hex')}`

export interface BenchCluster {
  nodes: NodeProcess[]
  /** node1, node2, node3 */
  ids: string[]
  dataDirs: string[]
  schema: string
  /** A client on the cluster's schema (search_path set). */
  db: pg.Client
  /** Haproxy with deploy/haproxy.cfg whose three backends are the given node URLs. */
  haproxy(backends: [string, string, string]): Promise<Haproxy>
  /** Creates an upload owned by `nodeIndex` that never completes (Upload-Length 1, no PATCH): a home for artifacts. */
  placeholderUpload(nodeIndex: number): Promise<string>
  /** Removes the bytes of every upload on node `nodeIndex` (between runs; rows stay). */
  clearUploads(nodeIndex: number): Promise<void>
  stop(): Promise<void>
}

async function withAdminClient<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({connectionString: settings.databaseUrl})
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

/**
 * `env`: extra environment for every node (e.g. REPLICATION_RECONCILE_INTERVAL). Heartbeats and
 * TTL are generous: on a loaded machine a node busy receiving a gigabyte must not drop out.
 * `testbed`: node i runs in its host i, reaching PostgreSQL through the testbed's gateway.
 */
export async function startCluster(root: string, env: Record<string, string> = {}, testbed?: Testbed): Promise<BenchCluster> {
  const schema = `bench_${randomBytes(6).toString('hex')}`
  await withAdminClient((c) => c.query(`CREATE SCHEMA ${schema}`))
  const ids = ['node1', 'node2', 'node3']
  const dataDirs = ids.map((id) => path.join(root, id))
  const nodes: NodeProcess[] = []
  const proxies: Haproxy[] = []
  let db: pg.Client | undefined
  const stop = async () => {
    await Promise.allSettled(proxies.map((p) => p.stop()))
    await Promise.allSettled(nodes.map((n) => n.kill('SIGTERM')))
    await db?.end().catch(() => {})
    await withAdminClient((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))
  }
  try {
    const ports = await Promise.all(ids.map(() => freePort()))
    const envFor = (i: number) => ({
      NODE_ID: ids[i]!,
      NODE_URL: `http://${testbed?.hosts[i]!.address ?? '127.0.0.1'}:${ports[i]}`,
      DATA_DIR: dataDirs[i]!,
      DATABASE_URL: testbed ? testbed.databaseUrl(settings.databaseUrl) : settings.databaseUrl,
      DATABASE_SCHEMA: schema,
      CLUSTER_SECRET,
      NODE_HEARTBEAT_INTERVAL: '1s',
      NODE_TTL: '60s',
      LOG_LEVEL: 'warn',
      ...env,
    })
    for (const dir of dataDirs) await mkdir(dir, {recursive: true})
    // BENCH_CPU_PROF: every node writes a CPU profile there when it stops.
    const options = (i: number) => ({
      execArgv: settings.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDir] : [],
      ...(testbed ? {host: testbed.hosts[i]!} : {}),
    })
    // The first node migrates the schema; the others start once it has.
    nodes.push(await spawnNode(envFor(0), ports[0], options(0)))
    nodes.push(...(await Promise.all([1, 2].map((i) => spawnNode(envFor(i), ports[i], options(i))))))
    db = new pg.Client({connectionString: settings.databaseUrl, options: `-c search_path=${schema}`})
    await db.connect()
    const client = db
    return {
      nodes,
      ids,
      dataDirs,
      schema,
      db: client,
      async haproxy(backends) {
        const proxy = await startHaproxy(backends)
        proxies.push(proxy)
        await waitForBackends(proxy.url)
        return proxy
      },
      async placeholderUpload(nodeIndex) {
        const res = await fetch(`${nodes[nodeIndex]!.url}/files/`, {method: 'POST', headers: {'Tus-Resumable': '1.0.0', 'Upload-Length': '1'}})
        const location = res.headers.get('location')
        if (res.status !== 201 || !location) throw new Error(`creating a placeholder upload on ${ids[nodeIndex]}: HTTP ${res.status}`)
        return new URL(location, nodes[nodeIndex]!.url).pathname.split('/').at(-1)!
      },
      async clearUploads(nodeIndex) {
        const dir = path.join(dataDirs[nodeIndex]!, 'uploads')
        for (const name of await readdir(dir)) await rm(path.join(dir, name), {recursive: true, force: true})
      },
      stop,
    }
  } catch (error) {
    await stop().catch(() => {})
    const logs = nodes.map((n, i) => `--- ${ids[i]}:\n${n.output().slice(-2000)}`).join('\n')
    throw new Error(`${(error as Error).message}\n${logs}`)
  }
}

/** Haproxy marks a server up after two good checks (rise 2, inter 1s): wait until six requests in a row are answered. */
async function waitForBackends(url: string): Promise<void> {
  const deadline = Date.now() + 20_000
  for (let inARow = 0; inARow < 6; ) {
    const res = await fetch(`${url}/readyz`).catch(() => undefined)
    await res?.arrayBuffer().catch(() => {})
    inARow = res?.ok ? inARow + 1 : 0
    if (Date.now() > deadline) throw new Error(`haproxy at ${url} did not see its nodes healthy within 20 s`)
    if (inARow === 0) await new Promise((r) => setTimeout(r, 250))
  }
}
