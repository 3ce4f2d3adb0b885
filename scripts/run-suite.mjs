#!/usr/bin/env node
// Runs one of the proof suites, test/faults (npm run test:faults) or test/fuzz (npm run
// test:fuzz), the way scripts/run-tests.mjs runs the main suite: the compiled node is built
// first (some tests spawn it as a process), then each file runs alone (they disturb shared
// services and ports). The whole run is bounded: SUITE_TIMEOUT seconds (default 600).
// Usage: node scripts/run-suite.mjs <faults|fuzz> [<path filter>...]
import {spawnSync} from 'node:child_process'
import {readdirSync} from 'node:fs'
import path from 'node:path'

const [suite, ...filters] = process.argv.slice(2)
if (suite !== 'faults' && suite !== 'fuzz') {
  console.error('usage: run-suite.mjs <faults|fuzz> [<path filter>...]')
  process.exit(2)
}
const dir = path.join('test', suite)
const files = readdirSync(dir)
  .filter((name) => name.endsWith('.test.ts'))
  .map((name) => path.join(dir, name))
  .filter((f) => filters.length === 0 || filters.some((flt) => f.includes(flt)))
  .sort()
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}

const build = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {stdio: 'inherit'})
if (build.status !== 0) process.exit(build.status ?? 1)

const limitSeconds = Number(process.env.SUITE_TIMEOUT ?? 600)
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  {stdio: 'inherit', env: {...process.env, NODE_ENV: 'test'}, timeout: limitSeconds * 1000, killSignal: 'SIGTERM'}
)
if (result.error) {
  console.error(`${suite} suite: ${result.error.message} (limit ${limitSeconds} s)`)
  process.exit(1)
}
process.exit(result.status ?? 1)
