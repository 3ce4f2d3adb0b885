/**
 * The servers under test, each in its own child process (so its memory is measured apart from
 * the client's) on 127.0.0.1 and an ephemeral port. A child gets its options as JSON in argv,
 * says {type: 'ready', url, storageDir} over IPC once listening, and cleans up on SIGTERM.
 */
import {fork, type ChildProcess} from 'node:child_process'
import {openSync} from 'node:fs'
import {mkdir, readdir, rm} from 'node:fs/promises'
import path from 'node:path'
import {BENCH_DIR} from './results.js'
import {PeakRss} from './rss.js'
import {settings} from './settings.js'

export const SERVERS = {
  ours: {label: 'ours', description: 'our node: koa + @tus/server + PostgreSQL + sha256/md5', script: 'ours.ts'},
  plainTus: {label: 'plain @tus/server', description: '@tus/server + @tus/file-store on node:http', script: 'plain-tus.ts'},
  rawPut: {label: 'raw PUT (the limit)', description: 'node:http PUT piped to a file', script: 'raw-put.ts'},
} as const

export type ServerKind = keyof typeof SERVERS

export interface ServerOptions {
  /** A directory the server may fill; the harness removes it. */
  workDir: string
  databaseUrl: string
  /** Our node only: run the media consumers in-process too, as `npm start` does (default: HTTP and relay only). */
  consumers?: boolean
}

export interface ReadyMessage {
  type: 'ready'
  url: string
  storageDir: string
}

export interface BenchServer {
  kind: ServerKind
  label: string
  /** The tus creation URL (or the PUT prefix for the raw server). */
  endpoint: string
  baseUrl: string
  rss: PeakRss
  /** Removes the uploaded files so runs do not accumulate gigabytes. */
  clearStorage(): Promise<void>
  stop(): Promise<void>
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

export async function startServer(kind: ServerKind, workDir: string, extra: Pick<ServerOptions, 'consumers'> = {}): Promise<BenchServer> {
  const options: ServerOptions = {workDir, databaseUrl: settings.databaseUrl, ...extra}
  const profile = kind === 'ours' && settings.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDir] : []
  const child = fork(path.join(BENCH_DIR, 'servers', SERVERS[kind].script), [JSON.stringify(options)], {
    cwd: path.dirname(BENCH_DIR),
    execArgv: ['--import', 'tsx', ...profile],
    // Our node logs at info, as in production: kept only when asked (BENCH_SERVER_LOG).
    stdio: ['ignore', kind === 'ours' && settings.serverLog ? openSync(settings.serverLog, 'a') : 'ignore', 'inherit', 'ipc'],
  })
  live.add(child)
  child.once('exit', () => live.delete(child))

  const ready = await new Promise<ReadyMessage>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} server did not start within 60 s`)), 60_000)
    child.once('message', (message) => {
      clearTimeout(timer)
      resolve(message as ReadyMessage)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${kind} server exited (${code}) before it was ready`))
    })
  })

  const exited = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())))
  return {
    kind,
    label: SERVERS[kind].label,
    baseUrl: ready.url,
    endpoint: `${ready.url}/files`,
    rss: new PeakRss(child.pid!),
    async clearStorage() {
      for (const name of await readdir(ready.storageDir)) await rm(path.join(ready.storageDir, name), {recursive: true, force: true})
    },
    async stop() {
      child.kill('SIGTERM')
      const timeout = setTimeout(() => child.kill('SIGKILL'), 30_000)
      await exited
      clearTimeout(timeout)
    },
  }
}

/** For the child: its options, and how to say it is ready and to clean up on SIGTERM. */
export function serverOptions(): ServerOptions {
  return JSON.parse(process.argv[2] ?? '{}') as ServerOptions
}

export function announceReady(message: Omit<ReadyMessage, 'type'>, shutdown: () => Promise<void>): void {
  let stopping = false
  process.on('SIGTERM', () => {
    if (stopping) return
    stopping = true
    shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`bench server: shutdown failed: ${String(error)}\n`)
        process.exit(1)
      }
    )
  })
  // The harness going away (crash, Ctrl-C) closes the IPC channel: do not linger.
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'))
  process.send!({type: 'ready', ...message} satisfies ReadyMessage)
}

/**
 * Starts one server of each kind, each in its own folder under `dir`, appending each to
 * `started` as soon as it is up: the caller's cleanup then stops whatever did start, even when a
 * later one fails.
 */
export async function startServersIn(dir: string, kinds: readonly ServerKind[], started: BenchServer[], extra: Pick<ServerOptions, 'consumers'> = {}): Promise<void> {
  for (const kind of kinds) {
    const workDir = path.join(dir, kind)
    await mkdir(workDir)
    started.push(await startServer(kind, workDir, extra))
  }
}
