/**
 * A node in its own process (for tests that kill it, restart it, signal it or measure its
 * memory); ready when /healthz answers.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import type {TestbedHost} from './netns.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const {port} = server.address() as net.AddressInfo
  server.close()
  return port
}

export interface NodeProcess {
  url: string
  child: ChildProcess
  output(): string
  /** Peak resident memory so far (VmHWM), in bytes. */
  peakRss(): Promise<number>
  kill(signal?: NodeJS.Signals): Promise<number | null>
  /** Waits for the process to exit on its own; its exit code. */
  exited(): Promise<number | null>
}

/**
 * Runs the compiled node (dist/, built by `npm test` before the tests), as production does:
 * memory figures then mean what they mean in production, without a TypeScript loader.
 * `options.host`: inside that testbed host (test/support/netns.ts), listening on its address.
 */
/** Suites create uploads and streams by the hundred from one address; test/security turns the limits on. */
const LIMITS_OFF = {QUOTA_UPLOADS_IN_FLIGHT: '0', QUOTA_BYTES_IN_FLIGHT: '0', RATE_LIMIT_CREATIONS: '0', SSE_MAX_PER_SUBJECT: '0'}

export async function spawnNode(env: Record<string, string>, port?: number, options: {execArgv?: string[]; host?: TestbedHost} = {}): Promise<NodeProcess> {
  port ??= await freePort()
  const main = path.join(root, 'dist/src/main.js')
  if (!existsSync(main)) throw new Error('dist/src/main.js is missing: run `npm run build` (npm test does it first)')
  const address = options.host?.address ?? '127.0.0.1'
  const argv = [...(options.execArgv ?? []), main]
  const [command, args] = options.host ? options.host.exec(process.execPath, argv) : [process.execPath, argv]
  const child = spawn(command, args, {
    cwd: root,
    env: {PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HOST: address, PORT: String(port), LOG_LEVEL: 'warn', ...LIMITS_OFF, ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const exited = once(child, 'exit')
  const url = `http://${address}:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode} before it was ready:\n${output}`)
    try {
      const res = await fetch(`${url}/healthz`)
      if (res.ok) break
    } catch {}
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`node did not become ready in 30 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url,
    child,
    output: () => output,
    async peakRss() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8')
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024
    },
    async exited() {
      const [code] = (await exited) as [number | null]
      return code
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const [code] = (await exited) as [number | null]
      return code
    },
  }
}
