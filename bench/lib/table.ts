/** A plain-text table for the terminal (and Markdown tables for the report). */

export type Row = readonly string[]

/** Columns padded to their widest cell; `align` is 'l' or 'r' per column. */
export function textTable(header: Row, rows: readonly Row[], align: string): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? '').length)))
  const line = (row: Row) =>
    row
      .map((cell, i) => (align[i] === 'r' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function markdownTable(header: Row, rows: readonly Row[], align: string): string {
  const escape = (cell: string) => cell.replace(/\|/g, '\\|')
  const line = (row: Row) => `| ${row.map(escape).join(' | ')} |`
  const rule = `|${header.map((_, i) => (align[i] === 'r' ? '---:' : ':---')).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}
