/**
 * The replication baseline: Debian's rsync as a daemon (one writable module per target
 * directory), started and stopped by the suite, and an rsync client pushing into it. Both run on
 * 127.0.0.1, or inside testbed hosts (test/support/netns.ts) on their addresses.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {writeFile} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import type {TestbedHost} from '../../test/support/netns.js'
import {freePort} from '../../test/support/process-node.js'

export interface RsyncDaemon {
  port: number
  /** rsync://<address>:<port>/<module>/ */
  moduleUrl(module: string): string
  stop(): Promise<void>
}

/**
 * `modules`: module name -> directory it writes into. `workDir` holds the config and log.
 * `host`: run inside that testbed host, on its address (default: 127.0.0.1 here).
 */
export async function startRsyncDaemon(workDir: string, modules: Record<string, string>, host?: TestbedHost): Promise<RsyncDaemon> {
  const port = await freePort()
  const address = host?.address ?? '127.0.0.1'
  const name = host ? `rsyncd-${host.name}` : 'rsyncd'
  const config = path.join(workDir, `${name}.conf`)
  const lines = [
    'use chroot = no',
    `uid = ${process.getuid?.() ?? 0}`,
    `gid = ${process.getgid?.() ?? 0}`,
    `log file = ${path.join(workDir, `${name}.log`)}`,
    'max connections = 0',
    ...Object.entries(modules).flatMap(([name, dir]) => [`[${name}]`, `    path = ${dir}`, '    read only = no']),
  ]
  await writeFile(config, `${lines.join('\n')}\n`)
  const [command, args] = inside(host, 'rsync', ['--daemon', '--no-detach', `--config=${config}`, `--address=${address}`, `--port=${port}`])
  const child = spawn(command, args, {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  child.once('error', (error) => (stderr += `\n${error.message} (is Debian's rsync installed? .ci/run installs it)`))
  await waitForPort(child, address, port, () => stderr)
  return {
    port,
    moduleUrl: (module) => `rsync://${address}:${port}/${module}/`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await once(child, 'exit')
    },
  }
}

const inside = (host: TestbedHost | undefined, command: string, args: string[]): [string, string[]] => (host ? host.exec(command, args) : [command, args])

async function waitForPort(child: ChildProcess, address: string, port: number, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`the rsync daemon did not start:\n${output()}`)
    }
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, address)
      socket.once('connect', () => (socket.destroy(), resolve(true)))
      socket.once('error', () => resolve(false))
    })
    if (up) return
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** `rsync -a <source>/ <target>` (from inside `host`, if given); rejects with rsync's stderr on a non-zero exit. */
export async function rsyncPush(sourceDir: string, target: string, host?: TestbedHost): Promise<void> {
  const [command, args] = inside(host, 'rsync', ['-a', `${sourceDir.replace(/\/$/, '')}/`, target])
  const child = spawn(command, args, {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0) throw new Error(`rsync to ${target} exited with ${code}: ${stderr.trim().slice(0, 500)}`)
}
