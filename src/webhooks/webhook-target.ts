/**
 * The check of WEBHOOK_URL at start: a URL whose host resolves to this machine (loopback, an
 * address of one of its interfaces, the unspecified address) or to a link-local address (cloud
 * metadata endpoints live there) would let whoever sets it make the node call itself. Refused
 * unless WEBHOOK_ALLOW_PRIVATE=true.
 */
import dns from 'node:dns'
import {lookup} from 'node:dns/promises'
import net from 'node:net'
import os from 'node:os'
import {ConfigError} from '../config/index.js'

/** Why `address` is refused, or null when it is not. */
export function refusedAddress(address: string, own: ReadonlySet<string> = ownAddresses()): string | null {
  const ip = address.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')
  const list = new net.BlockList()
  list.addSubnet('127.0.0.0', 8, 'ipv4')
  list.addAddress('0.0.0.0', 'ipv4')
  list.addAddress('::1', 'ipv6')
  list.addAddress('::', 'ipv6')
  const linkLocal = new net.BlockList()
  linkLocal.addSubnet('169.254.0.0', 16, 'ipv4')
  linkLocal.addSubnet('fe80::', 10, 'ipv6')
  const family = net.isIPv4(ip) ? 'ipv4' : 'ipv6'
  if (list.check(ip, family) || own.has(ip)) return 'this machine'
  if (linkLocal.check(ip, family)) return 'a link-local address'
  return null
}

function ownAddresses(): Set<string> {
  return new Set(Object.values(os.networkInterfaces()).flatMap((addresses) => (addresses ?? []).map((a) => a.address.toLowerCase())))
}

/** Resolves the URL's host and refuses it as above; the message names the variable, never the URL (it may carry a token). */
export async function checkWebhookTarget(url: string, allowPrivate: boolean): Promise<void> {
  if (allowPrivate) return
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '')
  let addresses: string[]
  try {
    addresses = net.isIP(host) ? [host] : (await lookup(host, {all: true})).map((a) => a.address)
  } catch (error) {
    throw new ConfigError(`invalid WEBHOOK_URL: its host does not resolve (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  for (const address of addresses) {
    const why = refusedAddress(address)
    if (why) throw new ConfigError(`invalid WEBHOOK_URL: it resolves to ${why} (${address}); set WEBHOOK_ALLOW_PRIVATE=true to allow it`)
  }
}

/**
 * A `lookup` for http.request that resolves the host as usual and refuses, instead of
 * connecting to, an address `refusedAddress` names: checked when the connection is made, so a
 * name re-pointed after start (DNS rebinding) cannot make the node call itself.
 */
export const connectLookup: net.LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, {...options, all: true}, (error, addresses) => {
    if (error) return callback(error, '', 0)
    const own = ownAddresses()
    for (const {address} of addresses) {
      const why = refusedAddress(address, own)
      if (why) return callback(Object.assign(new Error(`${hostname} resolves to ${why} (${address}); not called (WEBHOOK_ALLOW_PRIVATE is off)`), {code: 'EREFUSEDADDRESS'}), '', 0)
    }
    if (options.all) return callback(null, addresses as unknown as string, 0)
    const [first] = addresses
    if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), {code: 'ENOTFOUND'}), '', 0)
    callback(null, first.address, first.family)
  })
}
