/**
 * docs/benchmarks.md: the part between the markers is rewritten by every `npm run bench`
 * (tables, chart, goals not met); everything outside them is prose people maintain.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {formatNumber} from './format.js'
import {markdownRecords} from './report-table.js'
import {goalMet, type SuiteResults} from './results.js'

export const BEGIN = '<!-- bench:results:begin (written by npm run bench; edits here are overwritten) -->'
export const END = '<!-- bench:results:end -->'

function unmetGoals(suites: readonly SuiteResults[]): string {
  const missed = suites.flatMap((s) => s.records).filter((r) => goalMet(r) === false)
  if (missed.length === 0) return 'Every goal with a measurement was met.'
  return missed
    .map((r) => {
      const ratio = r.ratio === null ? '' : `, ${formatNumber(r.ratio)}× ${r.baselineName} (${formatNumber(r.baseline)} ${r.unit})`
      return `- **${r.name}**: ${formatNumber(r.ours)} ${r.unit}${ratio}; goal: ${r.goal!.text}.`
    })
    .join('\n')
}

function suiteSection(suite: SuiteResults, previous: ReadonlyMap<string, string>): string {
  // Not run this time: the section as the document had it (date, host, settings, notes), else its records alone.
  if (suite.carriedOver) {
    return previous.get(suite.suite) ?? [`### ${suite.suite}`, '', 'Not run this time: figures from the committed bench/results/latest.json.', '', markdownRecords(suite.records)].join('\n')
  }
  const settings = Object.entries(suite.settings)
    .map(([key, value]) => `${key} ${value}`)
    .join('; ')
  const reproduce = [...new Set(suite.records.map((r) => r.reproduce))].map((c) => `\`${c}\``).join(', ')
  const code = suite.revision ? ` Code: ${suite.revision.commit}${suite.revision.srcDirty ? ' plus uncommitted changes in src/ (shared checkout)' : ''}.` : ''
  const lines = [
    `### ${suite.suite}`,
    '',
    `Measured ${suite.finishedAt.slice(0, 16).replace('T', ' ')} UTC on ${suite.host.cpus} × ${suite.host.cpuModel}, ${suite.host.memoryGiB} GiB, Node ${suite.host.node}. Settings: ${settings}.${code} Reproduce: ${reproduce}.`,
    '',
    markdownRecords(suite.records),
  ]
  if (suite.notes?.length) lines.push('', ...suite.notes.map((n) => `- ${n}`))
  return lines.join('\n')
}

/** Each suite's section (`### <suite>` up to the next one) in the results part of a document. */
export function suiteSections(document: string): Map<string, string> {
  const sections = new Map<string, string>()
  const begin = document.indexOf(BEGIN)
  const end = document.indexOf(END)
  if (begin < 0 || end < begin) return sections
  const parts = document.slice(begin + BEGIN.length, end).split(/^(?=### )/m)
  for (const part of parts) {
    const name = /^### (\S+)\n/.exec(part)?.[1]
    if (name && name !== 'Goals') sections.set(name, part.trimEnd())
  }
  return sections
}

export function resultsSection(suites: readonly SuiteResults[], chartFile: string, previous: ReadonlyMap<string, string> = new Map()): string {
  return [
    BEGIN,
    '',
    'Cells are medians over the runs, with (min–max). ↑: higher is better; ↓: lower is better.',
    '',
    `![ours / baseline for every figure](${chartFile})`,
    '',
    '### Goals not met',
    '',
    unmetGoals(suites),
    '',
    ...suites.map((s) => suiteSection(s, previous)).flatMap((s) => [s, '']),
    END,
  ].join('\n')
}

/** Replaces the marked section of the document (appends it when the markers are missing). */
export async function updateDocument(file: string, section: string): Promise<void> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    text = '# Benchmarks\n'
  }
  const begin = text.indexOf(BEGIN)
  const end = text.indexOf(END)
  const updated = begin >= 0 && end > begin ? `${text.slice(0, begin)}${section}${text.slice(end + END.length)}` : `${text.trimEnd()}\n\n${section}\n`
  await writeFile(file, updated)
}
