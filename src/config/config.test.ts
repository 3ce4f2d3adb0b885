import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {ConfigError, loadConfig, parseSize} from './index.js'

describe('config', () => {
  it('reads sizes in decimal and binary units', () => {
    assert.equal(parseSize('1048576'), 1048576)
    assert.equal(parseSize('500MB'), 500e6)
    assert.equal(parseSize('20GiB'), 20 * 2 ** 30)
    assert.ok(Number.isNaN(parseSize('lots')))
  })

  it('takes defaults from config/default.json and overrides from the environment', () => {
    const config = loadConfig({PORT: '8080', MAX_UPLOAD_SIZE: '1GiB', UPLOAD_EXPIRY: '2h', TRUST_PROXY: 'true'})
    assert.equal(config.port, 8080)
    assert.equal(config.maxUploadSize, 2 ** 30)
    assert.equal(config.uploadExpiry, 2 * 3600_000)
    assert.equal(config.trustProxy, true)
    assert.equal(loadConfig({}).port, 1080)
  })

  it('names the variable and what it expects when a value is bad', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{PORT: 'abc'}, /^invalid PORT: /],
      [{PORT: '70000'}, /^invalid PORT: /],
      [{MAX_UPLOAD_SIZE: 'huge'}, /^invalid MAX_UPLOAD_SIZE: expected a size/],
      [{UPLOAD_EXPIRY: 'soon'}, /^invalid UPLOAD_EXPIRY: expected a duration/],
      [{DATABASE_URL: 'mysql://x'}, /^invalid DATABASE_URL: expected a URL/],
      [{AUTH_JWT_SECRET: 'short'}, /^invalid AUTH_JWT_SECRET: /],
      [{LOG_LEVEL: 'loud'}, /^invalid LOG_LEVEL: /],
    ]
    for (const [env, message] of cases) {
      assert.throws(() => loadConfig(env), (error: Error) => error instanceof ConfigError && message.test(error.message) && !error.message.includes('\n'))
    }
  })

  it('never echoes a secret value in its error', () => {
    assert.throws(() => loadConfig({AUTH_JWT_SECRET: 'tooshort-secret'}), (error: Error) => !error.message.includes('tooshort-secret'))
  })
})
