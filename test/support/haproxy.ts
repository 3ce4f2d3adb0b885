/** Debian's haproxy, run with the repository's deploy/haproxy.cfg in front of test nodes. */
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import net from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {freePort} from './process-node.js'

const CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../deploy/haproxy.cfg')

export interface Haproxy {
  url: string
  child: ChildProcess
  stop(): Promise<void>
}

export async function startHaproxy(nodes: [string, string, string], port?: number): Promise<Haproxy> {
  port ??= await freePort()
  const env = {
    PATH: process.env.PATH ?? '',
    HAPROXY_BIND: `127.0.0.1:${port}`,
    NODE1_ADDR: new URL(nodes[0]).host,
    NODE2_ADDR: new URL(nodes[1]).host,
    NODE3_ADDR: new URL(nodes[2]).host,
  }
  const child = spawn('haproxy', ['-db', '-f', CONFIG], {env, stdio: ['ignore', 'pipe', 'pipe']})
  let output = ''
  child.stdout!.on('data', (d) => (output += d))
  child.stderr!.on('data', (d) => (output += d))
  child.once('error', (error) => (output += `\n${error.message} (is Debian's haproxy installed? .ci/run installs it)`))
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`haproxy did not start:\n${output}`)
    }
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => (socket.destroy(), resolve(true)))
      socket.once('error', () => resolve(false))
    })
    if (up) break
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        await once(child, 'exit')
      }
    },
  }
}
