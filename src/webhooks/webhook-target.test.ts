import assert from 'node:assert/strict'
import {test} from 'node:test'
import {loadConfig} from '../config/index.js'
import {refusedAddress} from './webhook-target.js'

test('addresses of this machine and link-local ones are refused as webhook targets; others are not', () => {
  const own = new Set(['10.1.2.3'])
  for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1', '0.0.0.0', '::', '10.1.2.3']) assert.equal(refusedAddress(address, own), 'this machine', address)
  for (const address of ['169.254.169.254', 'fe80::1', '::ffff:169.254.0.1']) assert.equal(refusedAddress(address, own), 'a link-local address', address)
  for (const address of ['93.184.215.14', '10.1.2.4', '2001:db8::1', '192.168.1.10']) assert.equal(refusedAddress(address, own), null, address)
})

test('WEBHOOK_SECRET: required with WEBHOOK_URL, whsec_ + base64 of 24-64 bytes, never printed', () => {
  const url = 'https://app.example/hooks'
  const good = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
  assert.equal(loadConfig({WEBHOOK_URL: url, WEBHOOK_SECRET: good}).webhookSecret, good)
  assert.ok(loadConfig({WEBHOOK_URL: url, WEBHOOK_SECRET: Buffer.alloc(24, 1).toString('base64')}))
  assert.throws(() => loadConfig({WEBHOOK_URL: url}), /^ConfigError: invalid WEBHOOK_SECRET: needed with WEBHOOK_URL/)
  for (const bad of ['whsec_short', `whsec_${Buffer.alloc(8).toString('base64')}`, 'not base64 at all!!!!!!!!!!!!!!!!!!!!!!']) {
    assert.throws(() => loadConfig({WEBHOOK_URL: url, WEBHOOK_SECRET: bad}), (error: Error) => /invalid WEBHOOK_SECRET/.test(error.message) && !error.message.includes(bad))
  }
  assert.equal(loadConfig({}).webhookTimeout, 10_000)
})
