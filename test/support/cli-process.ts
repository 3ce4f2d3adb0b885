/**
 * The compiled `ingest` CLI (dist/src/cli/index.js, built by `npm test` first) in a process of
 * its own, as the README and docker-compose.yml run it, with only the environment the test gives.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const CLI = path.join(root, 'dist/src/cli/index.js')

export interface CliProcess {
  child: ChildProcess
  output(): string
  /** Exit code and signal once it has exited. */
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
  /** Sends `signal` (when still running) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{code: number | null; signal: NodeJS.Signals | null}>
}

export function spawnCli(args: string[], env: Record<string, string>, options: {detached?: boolean} = {}): CliProcess {
  if (!existsSync(CLI)) throw new Error('dist/src/cli/index.js is missing: run `npm run build` (npm test does it first)')
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: root,
    detached: options.detached ?? false,
    env: {PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.once('exit', (code, signal) => resolve({code, signal})))
  return {
    child,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

/** Waits until `url`/healthz answers 200; fails early with the process's output if it exits. */
export async function waitHealthy(proc: CliProcess, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`ingest ${proc.child.spawnargs.slice(2).join(' ')} exited with ${proc.child.exitCode} before it was ready:\n${proc.output()}`)
    try {
      if ((await fetch(`${url}/healthz`)).ok) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`${url} did not become healthy in ${timeoutMs} ms:\n${proc.output()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
