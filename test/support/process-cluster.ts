/**
 * N nodes in processes of their own, sharing one database schema, for the tests that kill,
 * restart or add cluster nodes: node i is `node<i+1>` (unless `id` says otherwise), keeps its
 * files in `<dir>/node<i+1>`, listens on a port of its own (in testbed host i when `hosts` are
 * given) and is known to its peers by that address. The first node migrates the schema alone;
 * the others start together once it is up.
 */
import type {ChildProcess} from 'node:child_process'
import path from 'node:path'
import type {TestbedHost} from './netns.js'
import {freePort, spawnNode, type NodeProcess} from './process-node.js'

/** Starts one node's process with `env` on `port`, ready when it returns. */
export type StartNode<P> = (env: Record<string, string>, port: number, index: number) => Promise<P>

export interface ProcessClusterOptions<P> {
  /** How many nodes start now (more may join with add()). */
  nodes: number
  /** Where each node's data directory goes. */
  dir: string
  /** What every node is given (database, CLUSTER_SECRET, intervals...). */
  env: Record<string, string>
  /** A node's id; `node<i+1>` by default. */
  id?: (index: number) => string
  /** Node i runs in hosts[i] (test/support/netns.ts), listening on its address. */
  hosts?: TestbedHost[]
  /** How a node is started: the compiled node (spawnNode) unless given, e.g. `ingest serve`. */
  start?: StartNode<P>
}

export interface ProcessCluster<P> {
  /** The current process of each node (restart and add update it in place). */
  readonly nodes: P[]
  readonly ids: string[]
  readonly urls: string[]
  readonly dataDirs: string[]
  /** The environment node i was started with. */
  envOf(index: number): Record<string, string>
  /** Starts node i again (after a kill), on its port, with its environment and data directory. */
  restart(index: number): Promise<P>
  /** A node that joins late, the next index. */
  add(): Promise<P>
  /** Kills every process this cluster started that is still running. */
  kill(): Promise<void>
}

export async function startProcessCluster<P extends {child: ChildProcess} = NodeProcess>(options: ProcessClusterOptions<P>): Promise<ProcessCluster<P>> {
  const spawnCompiled: StartNode<NodeProcess> = (env, port, index) => spawnNode(env, port, {host: options.hosts?.[index]})
  const start = options.start ?? (spawnCompiled as unknown as StartNode<P>)
  const idOf = options.id ?? ((i: number) => `node${i + 1}`)
  const nodes: P[] = []
  const started: P[] = []
  const ports: number[] = []
  const ids: string[] = []
  const urls: string[] = []
  const dataDirs: string[] = []
  const envOf = (i: number) => ({...options.env, NODE_ID: ids[i]!, NODE_URL: urls[i]!, DATA_DIR: dataDirs[i]!})
  const place = async (i: number) => {
    ports[i] = await freePort()
    ids[i] = idOf(i)
    urls[i] = `http://${options.hosts?.[i]?.address ?? '127.0.0.1'}:${ports[i]}`
    dataDirs[i] = path.join(options.dir, `node${i + 1}`)
  }
  const run = async (i: number) => {
    const node = await start(envOf(i), ports[i]!, i)
    started.push(node)
    nodes[i] = node
    return node
  }
  const kill = async () => {
    await Promise.all(
      started.map(async ({child}) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGKILL')
        await exited
      })
    )
  }
  try {
    for (let i = 0; i < options.nodes; i++) await place(i)
    await run(0)
    await Promise.all(Array.from({length: options.nodes - 1}, (_, i) => run(i + 1)))
  } catch (error) {
    await kill()
    throw error
  }
  return {
    nodes,
    ids,
    urls,
    dataDirs,
    envOf,
    restart: run,
    async add() {
      const i = ids.length
      await place(i)
      return run(i)
    },
    kill,
  }
}
