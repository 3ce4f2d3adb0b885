#!/usr/bin/env node
// Runs every *.test.ts under src/ and consumers/ (unit) and test/ (integration, end to end)
// with Node's test runner, one file at a time (they share PostgreSQL, RabbitMQ and ports).
// test/faults, test/fuzz and test/security have their own commands (npm run test:faults,
// npm run test:fuzz, npm run test:security).
// Usage: npm test [-- <path filter>...]
import {readdirSync, statSync} from 'node:fs'
import path from 'node:path'
import {buildAndRun, selectFiles} from './test-runner.mjs'

const roots = ['src', 'consumers', 'test']
const SEPARATE_SUITES = new Set(['faults', 'fuzz', 'security'].map((suite) => path.join('test', suite)))
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

const files = roots.flatMap((root) => {
  try {
    return walk(root)
  } catch {
    return []
  }
})
buildAndRun(selectFiles(files, filters))
