// What scripts/run-tests.mjs (npm test) and scripts/run-suite.mjs (faults, fuzz) share: build
// the compiled node first (some tests spawn it, as production runs it), then run the files
// with Node's test runner one at a time (they share PostgreSQL, RabbitMQ and ports), and exit
// with the runner's status.
import {spawnSync} from 'node:child_process'

/** Keeps the files that contain one of `filters` (all when there is none); exits when none is left. */
export function selectFiles(files, filters) {
  const selected = files.filter((f) => filters.length === 0 || filters.some((flt) => f.includes(flt))).sort()
  if (selected.length === 0) {
    console.error('no test files matched')
    process.exit(1)
  }
  return selected
}

/** A test (or hook) still running after this fails, with its name, instead of hanging the run. */
const TEST_TIMEOUT_MS = 600_000

/** `limitSeconds`: the whole run is stopped (and fails) past it. */
export function buildAndRun(files, {label = 'tests', limitSeconds} = {}) {
  const build = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {stdio: 'inherit'})
  if (build.status !== 0) process.exit(build.status ?? 1)
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-reporter=spec', ...files], {
    stdio: 'inherit',
    env: {...process.env, NODE_ENV: 'test'},
    ...(limitSeconds ? {timeout: limitSeconds * 1000, killSignal: 'SIGTERM'} : {}),
  })
  if (result.error) {
    console.error(`${label}: ${result.error.message}${limitSeconds ? ` (limit ${limitSeconds} s)` : ''}`)
    process.exit(1)
  }
  process.exit(result.status ?? 1)
}
