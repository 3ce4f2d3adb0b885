/**
 * `npm run bench [-- <suite>...] [--report-only]`: runs the benchmark suites, each in its own
 * process, then turns every bench/results/<suite>.json into the table, results/latest.json,
 * docs/benchmarks.svg and the results section of docs/benchmarks.md.
 *
 * A suite is any bench/<name>.ts other than this file: it measures, and writes its records
 * with runSuite()/writeSuiteResults() from lib/. Adding a file adds a suite. Results of suites
 * not run this time stay in the report, with the date they were measured: from their local
 * bench/results/<suite>.json, else from the committed latest.json (and their section of the
 * document as it was).
 */
import {spawnSync} from 'node:child_process'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {ratioChart} from './lib/chart.js'
import {resultsSection, suiteSections, updateDocument} from './lib/report-doc.js'
import {printRecords} from './lib/report-table.js'
import {BENCH_DIR, carriedOverSuites, committedRecords, LATEST_FILE, readAllSuiteResults, writeJsonAtomically} from './lib/results.js'

const ROOT = path.dirname(BENCH_DIR)
const DOC = path.join(ROOT, 'docs', 'benchmarks.md')
const CHART = path.join(ROOT, 'docs', 'benchmarks.svg')

async function discoverSuites(): Promise<string[]> {
  const names = await readdir(BENCH_DIR)
  return names
    .filter((n) => n.endsWith('.ts') && !n.endsWith('.d.ts') && n !== 'run.ts')
    .map((n) => n.slice(0, -'.ts'.length))
    .sort()
}

function runSuiteProcess(suite: string): boolean {
  process.stderr.write(`\n=== ${suite} ===\n`)
  const started = Date.now()
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, `${suite}.ts`)], {cwd: ROOT, stdio: 'inherit'})
  const ok = result.status === 0
  process.stderr.write(`=== ${suite}: ${ok ? 'done' : `FAILED (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`} in ${Math.round((Date.now() - started) / 1000)} s ===\n`)
  return ok
}

async function main(): Promise<number> {
  const args = process.argv.slice(2)
  const reportOnly = args.includes('--report-only')
  const known = await discoverSuites()
  const wanted = args.filter((a) => !a.startsWith('--'))
  const unknown = wanted.filter((w) => !known.includes(w))
  if (unknown.length > 0) {
    process.stderr.write(`unknown suite(s): ${unknown.join(', ')}; known: ${known.join(', ')}\n`)
    return 2
  }
  const failed = reportOnly ? [] : (wanted.length > 0 ? wanted : known).filter((suite) => !runSuiteProcess(suite))

  // Discovered again: a suite added while this run was going still has its results reported.
  const present = await discoverSuites()
  const measured = (await readAllSuiteResults()).filter((s) => {
    if (present.includes(s.suite)) return true
    process.stderr.write(`ignoring results of ${s.suite}: there is no bench/${s.suite}.ts\n`)
    return false
  })
  // Suites with no results here (not run on this machine) keep their committed figures.
  const suites = [...measured, ...carriedOverSuites(measured, present, await committedRecords())].sort((a, b) => a.suite.localeCompare(b.suite))
  const records = suites.flatMap((s) => s.records)
  for (const suite of suites) process.stdout.write(`\n${suite.suite} (${suite.carriedOver ? 'committed figures, not run here' : `measured ${suite.finishedAt}`})\n${printRecords(suite.records)}\n`)
  await writeJsonAtomically(LATEST_FILE, records)
  await writeFile(CHART, ratioChart(records, 'video-ingest benchmarks: ours / baseline'))
  const previous = suiteSections(await readFile(DOC, 'utf8').catch(() => ''))
  await updateDocument(DOC, resultsSection(suites, path.basename(CHART), previous))
  process.stdout.write(`\nwrote ${path.relative(ROOT, LATEST_FILE)}, ${path.relative(ROOT, CHART)}, ${path.relative(ROOT, DOC)}\n`)
  if (failed.length > 0) process.stderr.write(`failed suites: ${failed.join(', ')}\n`)
  return failed.length > 0 ? 1 : 0
}

process.exitCode = await main()
