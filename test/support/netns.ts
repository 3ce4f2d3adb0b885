/**
 * A network testbed of our own on this machine: hosts in Linux network namespaces, each joined
 * to one bridge by a veth pair whose two ends are shaped with `tc tbf` (default 1 Gbit/s each
 * way), so what crosses a host's link is bounded as on a real network. Needs root and iproute2.
 *
 * Addresses come from 198.18.0.0/15, the range set aside for benchmark testbeds (RFC 2544); no
 * namespace has a default route, so nothing sent inside can leave the bridge. The bridge's own
 * address (in the root namespace) forwards PostgreSQL to 127.0.0.1:5432, so nodes inside reach
 * the machine's database "over the network". stop() removes every namespace, link and forwarder,
 * and is safe to call after a failed start.
 */
import {execFile, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import net from 'node:net'
import {promisify} from 'node:util'

const run = promisify(execFile)

export interface TestbedHost {
  /** h1, h2, ... */
  name: string
  netns: string
  address: string
  /** The root namespace's end of this host's link (where `ip link set down` cuts it). */
  link: string
  /** argv that runs `command` inside this host's namespace. */
  exec(command: string, args: string[]): [string, string[]]
}

export interface Testbed {
  hosts: TestbedHost[]
  /** The bridge's address in the root namespace, reachable from every host. */
  gateway: string
  /** `postgres://…@<gateway>:<port>/…`: the machine's PostgreSQL, reached from inside the hosts. */
  databaseUrl(localUrl: string): string
  /** Link rate of every host, as tc reads it (e.g. "1gbit"). */
  rate: string
  cutLink(host: TestbedHost): Promise<void>
  restoreLink(host: TestbedHost): Promise<void>
  stop(): Promise<void>
}

/** Why a testbed cannot be made here, or undefined when it can. */
export function testbedUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  for (const tool of ['ip', 'tc']) {
    if (spawnSync(tool, ['-V'], {stdio: 'ignore'}).error) return `${tool} (iproute2) is not installed`
  }
  return undefined
}

const ip = (...args: string[]) => run('ip', args)

/** A TCP forwarder from `listen` to `target`, for services that listen on loopback only. */
async function forward(listenHost: string, target: {host: string; port: number}): Promise<{port: number; close(): Promise<void>}> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target)
    sockets.add(inbound).add(outbound)
    const drop = () => {
      inbound.destroy()
      outbound.destroy()
      sockets.delete(inbound)
      sockets.delete(outbound)
    }
    inbound.on('error', drop).on('close', drop)
    outbound.on('error', drop).on('close', drop)
    inbound.pipe(outbound).pipe(inbound)
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, listenHost, resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

export async function createTestbed(options: {hosts: number; rate?: string; database?: {host: string; port: number}}): Promise<Testbed> {
  const reason = testbedUnavailable()
  if (reason) throw new Error(`cannot create the network testbed: ${reason}`)
  const rate = options.rate ?? '1gbit'
  const tag = `vi${randomBytes(2).toString('hex')}`
  const subnet = `198.18.${1 + (randomBytes(1)[0]! % 254)}`
  const bridge = `${tag}br`
  const gateway = `${subnet}.1`
  const hosts: TestbedHost[] = Array.from({length: options.hosts}, (_, i) => {
    const netns = `${tag}-h${i + 1}`
    return {
      name: `h${i + 1}`,
      netns,
      address: `${subnet}.${11 + i}`,
      link: `${tag}h${i + 1}`,
      exec: (command, args) => ['ip', ['netns', 'exec', netns, command, ...args]],
    }
  })
  const made: Array<() => Promise<unknown>> = []
  let forwarder: Awaited<ReturnType<typeof forward>> | undefined
  const stop = async () => {
    await forwarder?.close()
    for (const undo of made.reverse()) await undo().catch(() => {})
    made.length = 0
  }
  // tbf: the burst must hold at least one timer tick of traffic at the rate, or throughput falls short of it.
  const shape = (args: string[]) => run('tc', [...args, 'root', 'tbf', 'rate', rate, 'burst', '4mb', 'latency', '100ms'])
  try {
    await ip('link', 'add', bridge, 'type', 'bridge')
    made.push(() => ip('link', 'del', bridge))
    await ip('addr', 'add', `${gateway}/24`, 'dev', bridge)
    await ip('link', 'set', bridge, 'up')
    for (const host of hosts) {
      await ip('netns', 'add', host.netns)
      made.push(() => ip('netns', 'del', host.netns))
      await ip('link', 'add', host.link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.netns)
      await ip('link', 'set', host.link, 'master', bridge, 'up')
      await ip('-n', host.netns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0')
      await ip('-n', host.netns, 'link', 'set', 'eth0', 'up')
      await ip('-n', host.netns, 'link', 'set', 'lo', 'up')
      await shape(['qdisc', 'add', 'dev', host.link]) // traffic towards the host
      await shape(['-n', host.netns, 'qdisc', 'add', 'dev', 'eth0']) // traffic from the host
    }
    if (options.database) forwarder = await forward(gateway, options.database)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    hosts,
    gateway,
    rate,
    databaseUrl(localUrl) {
      if (!forwarder) throw new Error('the testbed was created without a database forwarder')
      const url = new URL(localUrl)
      url.hostname = gateway
      url.port = String(forwarder.port)
      return url.toString()
    },
    cutLink: async (host) => void (await ip('link', 'set', host.link, 'down')),
    restoreLink: async (host) => void (await ip('link', 'set', host.link, 'up')),
    stop,
  }
}
