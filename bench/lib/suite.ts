/**
 * The frame every suite runs in: time it, write bench/results/<suite>.json, print its rows,
 * exit non-zero on failure. Plus the alternating order runs are taken in.
 */
import {codeRevision, hostInfo, writeSuiteResults, type BenchRecord, type SuiteResults} from './results.js'
import {printRecords} from './report-table.js'

export interface SuiteOutcome {
  settings: SuiteResults['settings']
  records: BenchRecord[]
  notes?: string[]
}

export async function runSuite(suite: string, body: () => Promise<SuiteOutcome>): Promise<void> {
  const startedAt = new Date().toISOString()
  const revision = codeRevision()
  try {
    const outcome = await body()
    const results: SuiteResults = {suite, startedAt, finishedAt: new Date().toISOString(), host: hostInfo(), ...(revision ? {revision} : {}), ...outcome}
    const file = await writeSuiteResults(results)
    process.stdout.write(`\n${printRecords(results.records)}\n\n${suite}: results in ${file}\n`)
  } catch (error) {
    process.stderr.write(`${suite}: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exitCode = 1
  }
}

/**
 * The order of repetition `run`: as given on even runs, reversed on odd ones (ours, baseline,
 * baseline, ours, ...), so neither side always runs first, right after the other's writeback.
 */
export function alternating<T>(items: readonly T[], run: number): T[] {
  return run % 2 === 0 ? [...items] : [...items].reverse()
}

export function progress(suite: string, message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${suite}: ${message}\n`)
}
