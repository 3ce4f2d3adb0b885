/**
 * The result records every suite writes and the report reads. A suite (bench/<suite>.ts) writes
 * bench/results/<suite>.json; bench/run.ts gathers every such file into latest.json, the table,
 * the chart and docs/benchmarks.md. A suite run on its own still lands in the next report.
 */
import {execFileSync} from 'node:child_process'
import {mkdir, readdir, readFile, rename, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import type {Summary} from './stats.js'

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const RESULTS_DIR = path.join(BENCH_DIR, 'results')
export const LATEST_FILE = path.join(RESULTS_DIR, 'latest.json')

/**
 * What counts as good enough. `ratio`: ratio >= it (better: higher) or <= it (better: lower).
 * `oursAtMost`: an absolute ceiling on ours (e.g. 0 errors).
 */
export interface Goal {
  ratio?: number
  oursAtMost?: number
  /** The goal as people say it, e.g. ">= 0.9 of plain @tus/server". */
  text: string
}

export interface BenchRecord {
  /** Unique across suites; says what was measured. */
  name: string
  /** Medians over the repetitions; null when not measurable (e.g. every run failed). */
  ours: number | null
  baseline: number | null
  unit: string
  /** ours / baseline (null when the baseline is 0 or missing). */
  ratio: number | null
  suite: string
  /** What the baseline column is: "plain @tus/server", "raw PUT (the limit)", ... */
  baselineName: string
  /** Which direction is good for `ours` (and so for the ratio). */
  better: 'higher' | 'lower'
  goal?: Goal
  oursRange?: [number, number]
  baselineRange?: [number, number]
  runs: number
  /** Command that reproduces this figure. */
  reproduce: string
}

export interface SuiteResults {
  suite: string
  startedAt: string
  finishedAt: string
  host: {cpus: number; cpuModel: string; memoryGiB: number; node: string}
  /** The code measured: HEAD, and whether src/ had uncommitted changes (shared checkout). */
  revision?: {commit: string; srcDirty: boolean}
  /** The knobs the suite ran with (sizes, repetitions...), for the report. */
  settings: Record<string, string | number | boolean>
  records: BenchRecord[]
  notes?: string[]
  /** Not run this time: the records come from the committed latest.json (see carriedOverSuites). */
  carriedOver?: true
}

export function codeRevision(): SuiteResults['revision'] {
  const git = (...args: string[]) => execFileSync('git', args, {cwd: BENCH_DIR, encoding: 'utf8'}).trim()
  try {
    return {commit: git('rev-parse', '--short', 'HEAD'), srcDirty: git('status', '--porcelain', '--', '../src', '../consumers') !== ''}
  } catch {
    return undefined
  }
}

export function hostInfo(): SuiteResults['host'] {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
  }
}

/** A record comparing two summaries (ratio of medians). */
export function compare(
  fields: Omit<BenchRecord, 'ours' | 'baseline' | 'ratio' | 'oursRange' | 'baselineRange' | 'runs'>,
  ours: Summary | null,
  baseline: Summary | null
): BenchRecord {
  const ratio = ours && baseline && baseline.median !== 0 ? ours.median / baseline.median : null
  return {
    ...fields,
    ours: ours?.median ?? null,
    baseline: baseline?.median ?? null,
    ratio,
    ...(ours ? {oursRange: [ours.min, ours.max] as [number, number]} : {}),
    ...(baseline ? {baselineRange: [baseline.min, baseline.max] as [number, number]} : {}),
    runs: Math.max(ours?.runs ?? 0, baseline?.runs ?? 0),
  }
}

export function goalMet(record: BenchRecord): boolean | undefined {
  const goal = record.goal
  if (!goal) return undefined
  if (goal.oursAtMost !== undefined && (record.ours === null || record.ours > goal.oursAtMost)) return false
  if (goal.ratio !== undefined) {
    if (record.ratio === null) return false
    return record.better === 'higher' ? record.ratio >= goal.ratio : record.ratio <= goal.ratio
  }
  return true
}

export async function writeSuiteResults(results: SuiteResults): Promise<string> {
  await mkdir(RESULTS_DIR, {recursive: true})
  const file = path.join(RESULTS_DIR, `${results.suite}.json`)
  await writeJsonAtomically(file, results)
  return file
}

/** Every suite's latest results, by suite name (latest.json itself excluded). */
export async function readAllSuiteResults(): Promise<SuiteResults[]> {
  let names: string[]
  try {
    names = await readdir(RESULTS_DIR)
  } catch {
    return []
  }
  const all: SuiteResults[] = []
  for (const name of names.filter((n) => n.endsWith('.json') && n !== path.basename(LATEST_FILE)).sort()) {
    const parsed = JSON.parse(await readFile(path.join(RESULTS_DIR, name), 'utf8')) as SuiteResults
    if (!Array.isArray(parsed.records)) throw new Error(`${name} has no records array: not a suite result`)
    all.push(parsed)
  }
  return all
}

export async function writeJsonAtomically(file: string, value: unknown): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`
  await writeFile(temporary, `${JSON.stringify(value, null, 2)}\n`)
  await rename(temporary, file)
}

/** The records of the committed latest.json (HEAD), else of the file on disk; [] when neither exists. */
export async function committedRecords(): Promise<BenchRecord[]> {
  let text: string
  try {
    text = execFileSync('git', ['show', `HEAD:${path.relative(path.dirname(BENCH_DIR), LATEST_FILE)}`], {cwd: BENCH_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']})
  } catch {
    text = await readFile(LATEST_FILE, 'utf8').catch(() => '[]')
  }
  const parsed = JSON.parse(text) as unknown
  return Array.isArray(parsed) ? (parsed as BenchRecord[]) : []
}

/**
 * The suites in `wanted` with no results of their own here, rebuilt from committed records, so
 * that a run of some suites keeps the others in latest.json and the report.
 */
export function carriedOverSuites(measured: readonly SuiteResults[], wanted: readonly string[], committed: readonly BenchRecord[]): SuiteResults[] {
  const have = new Set(measured.map((s) => s.suite))
  return wanted
    .filter((suite) => !have.has(suite))
    .map((suite) => ({suite, records: committed.filter((r) => r.suite === suite)}))
    .filter(({records}) => records.length > 0)
    .map(({suite, records}) => ({suite, startedAt: '', finishedAt: '', host: {cpus: 0, cpuModel: '', memoryGiB: 0, node: ''}, settings: {}, records, carriedOver: true}))
}
