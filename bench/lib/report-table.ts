/** The results table, for the terminal and for docs/benchmarks.md. */
import {formatNumber} from './format.js'
import {goalMet, type BenchRecord} from './results.js'
import {markdownTable, textTable, type Row} from './table.js'

const HEADER: Row = ['benchmark', 'ours', 'baseline', 'unit', 'ours/baseline', 'goal']
const ALIGN = 'lrrlrl'

function withRange(value: number | null, range: [number, number] | undefined): string {
  if (value === null) return '–'
  if (!range || range[0] === range[1]) return formatNumber(value)
  return `${formatNumber(value)} (${formatNumber(range[0])}–${formatNumber(range[1])})`
}

function goalCell(record: BenchRecord): string {
  const met = goalMet(record)
  if (met === undefined) return ''
  return `${met ? 'met' : 'NOT MET'}: ${record.goal!.text}`
}

function rows(records: readonly BenchRecord[]): Row[] {
  return records.map((r) => [
    r.name,
    withRange(r.ours, r.oursRange),
    `${withRange(r.baseline, r.baselineRange)} ${r.baselineName ? `[${r.baselineName}]` : ''}`.trim(),
    r.unit,
    r.ratio === null ? '–' : `${r.ratio.toFixed(2)}${r.better === 'higher' ? ' ↑' : ' ↓'}`,
    goalCell(r),
  ])
}

export const printRecords = (records: readonly BenchRecord[]): string => textTable(HEADER, rows(records), ALIGN)
export const markdownRecords = (records: readonly BenchRecord[]): string => markdownTable(HEADER, rows(records), ALIGN)
