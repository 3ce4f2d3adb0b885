/**
 * The replication baseline: Debian's rsync as a daemon on 127.0.0.1 (one writable module per
 * target directory), started and stopped by the suite, and an rsync client pushing into it.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {writeFile} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {freePort} from '../../test/support/process-node.js'

export interface RsyncDaemon {
  port: number
  /** rsync://127.0.0.1:<port>/<module>/ */
  moduleUrl(module: string): string
  stop(): Promise<void>
}

/** `modules`: module name -> directory it writes into. `workDir` holds the config and log. */
export async function startRsyncDaemon(workDir: string, modules: Record<string, string>): Promise<RsyncDaemon> {
  const port = await freePort()
  const config = path.join(workDir, 'rsyncd.conf')
  const lines = [
    'use chroot = no',
    `uid = ${process.getuid?.() ?? 0}`,
    `gid = ${process.getgid?.() ?? 0}`,
    `log file = ${path.join(workDir, 'rsyncd.log')}`,
    'max connections = 0',
    ...Object.entries(modules).flatMap(([name, dir]) => [`[${name}]`, `    path = ${dir}`, '    read only = no']),
  ]
  await writeFile(config, `${lines.join('\n')}\n`)
  const child = spawn('rsync', ['--daemon', '--no-detach', `--config=${config}`, '--address=127.0.0.1', `--port=${port}`], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  child.once('error', (error) => (stderr += `\n${error.message} (is Debian's rsync installed? .ci/run installs it)`))
  await waitForPort(child, port, () => stderr)
  return {
    port,
    moduleUrl: (module) => `rsync://127.0.0.1:${port}/${module}/`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await once(child, 'exit')
    },
  }
}

async function waitForPort(child: ChildProcess, port: number, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`the rsync daemon did not start:\n${output()}`)
    }
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => (socket.destroy(), resolve(true)))
      socket.once('error', () => resolve(false))
    })
    if (up) return
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** `rsync -a <source>/ <target>`; rejects with rsync's stderr on a non-zero exit. */
export async function rsyncPush(sourceDir: string, target: string): Promise<void> {
  const child = spawn('rsync', ['-a', `${sourceDir.replace(/\/$/, '')}/`, target], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0) throw new Error(`rsync to ${target} exited with ${code}: ${stderr.trim().slice(0, 500)}`)
}
