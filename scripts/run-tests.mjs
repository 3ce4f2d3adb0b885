#!/usr/bin/env node
// Runs every *.test.ts under src/ and consumers/ (unit) and test/ (integration, end to end)
// with Node's test runner, one file at a time (they share PostgreSQL, RabbitMQ and ports).
// test/faults and test/fuzz have their own commands (npm run test:faults, npm run test:fuzz).
// Usage: npm test [-- <path filter>...]
import {spawnSync} from 'node:child_process'
import {readdirSync, statSync} from 'node:fs'
import path from 'node:path'

const roots = ['src', 'consumers', 'test']
const SEPARATE_SUITES = new Set([path.join('test', 'faults'), path.join('test', 'fuzz')])
const filters = process.argv.slice(2)

function walk(dir) {
  let out = []
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.') || SEPARATE_SUITES.has(path.join(dir, name))) continue
    const full = path.join(dir, name)
    if (statSync(full).isDirectory()) out = out.concat(walk(full))
    else if (name.endsWith('.test.ts')) out.push(full)
  }
  return out
}

const files = roots
  .flatMap((root) => {
    try {
      return walk(root)
    } catch {
      return []
    }
  })
  .filter((f) => filters.length === 0 || filters.some((flt) => f.includes(flt)))
  .sort()

if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}

// Process-level tests (memory, signals) run the compiled node, as production does.
const build = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {stdio: 'inherit'})
if (build.status !== 0) process.exit(build.status ?? 1)

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  {stdio: 'inherit', env: {...process.env, NODE_ENV: 'test'}}
)
process.exit(result.status ?? 1)
