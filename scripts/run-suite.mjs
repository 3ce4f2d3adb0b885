#!/usr/bin/env node
// Runs one of the proof suites, test/faults (npm run test:faults), test/fuzz (npm run
// test:fuzz) or test/security (npm run test:security), the way npm test runs the main suite (scripts/test-runner.mjs). The whole run is
// bounded: SUITE_TIMEOUT seconds (default 600).
// Usage: node scripts/run-suite.mjs <faults|fuzz|security> [<path filter>...]
import {readdirSync} from 'node:fs'
import path from 'node:path'
import {buildAndRun, selectFiles} from './test-runner.mjs'

const [suite, ...filters] = process.argv.slice(2)
const SUITES = ['faults', 'fuzz', 'security']
if (!SUITES.includes(suite)) {
  console.error(`usage: run-suite.mjs <${SUITES.join('|')}> [<path filter>...]`)
  process.exit(2)
}
const dir = path.join('test', suite)
const files = readdirSync(dir)
  .filter((name) => name.endsWith('.test.ts'))
  .map((name) => path.join(dir, name))
buildAndRun(selectFiles(files, filters), {label: `${suite} suite`, limitSeconds: Number(process.env.SUITE_TIMEOUT ?? 600)})
