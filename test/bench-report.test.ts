/**
 * bench/run.ts's report: a run of some suites keeps the others' figures (from the committed
 * latest.json) and their sections of docs/benchmarks.md as they were.
 */
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, it} from 'node:test'
import {resultsSection, suiteSections} from '../bench/lib/report-doc.js'
import {BENCH_DIR, carriedOverSuites, committedRecords, type SuiteResults} from '../bench/lib/results.js'

describe('the benchmark report', () => {
  it('keeps the suites a run did not measure, with their committed records and their section of the document', async () => {
    const committed = await committedRecords()
    const suites = [...new Set(committed.map((r) => r.suite))]
    assert.ok(suites.length >= 3, 'the committed latest.json has several suites')
    const [measuredSuite, ...others] = suites as [string, ...string[]]
    const measured: SuiteResults = {
      suite: measuredSuite,
      startedAt: '2026-01-01T00:00:00Z',
      finishedAt: '2026-01-01T00:10:00Z',
      host: {cpus: 2, cpuModel: 'test', memoryGiB: 4, node: 'v20'},
      settings: {runs: 1},
      records: [{...committed.find((r) => r.suite === measuredSuite)!, ours: 1, baseline: 2, ratio: 0.5}],
    }
    const carried = carriedOverSuites([measured], suites, committed)
    assert.deepEqual(carried.map((s) => s.suite).sort(), [...others].sort())
    for (const suite of carried) assert.deepEqual(suite.records, committed.filter((r) => r.suite === suite.suite))

    const document = await readFile(path.join(path.dirname(BENCH_DIR), 'docs', 'benchmarks.md'), 'utf8')
    const previous = suiteSections(document)
    const section = resultsSection([measured, ...carried], 'benchmarks.svg', previous)
    for (const suite of others) if (previous.has(suite)) assert.ok(section.includes(previous.get(suite)!), `${suite}'s section is kept as it was`)
    assert.ok(section.includes('Measured 2026-01-01 00:10 UTC'), 'the measured suite has its new section')
    assert.ok(!section.includes(previous.get(measuredSuite) ?? '\u0000'), "the measured suite's old section is replaced")
  })
})
