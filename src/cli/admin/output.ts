/** How the admin commands print: aligned tables and key/value blocks for people, JSON for scripts, a progress bar on terminals. */

export type Column<T> = [header: string, value: (row: T) => string | number | null | undefined]

const cell = (value: string | number | null | undefined) => (value === null || value === undefined || value === '' ? '-' : String(value).replace(/\s+/g, ' '))

export function table<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>): string {
  const cells = rows.map((row) => columns.map(([, value]) => cell(value(row))))
  const widths = columns.map(([header], i) => Math.max(header.length, ...cells.map((r) => r[i]!.length)))
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd()
  return [line(columns.map(([header]) => header)), ...cells.map(line)].join('\n') + '\n'
}

export function fields(pairs: ReadonlyArray<[string, string | number | null | undefined]>): string {
  const width = Math.max(...pairs.map(([key]) => key.length))
  return pairs.map(([key, value]) => `${`${key}:`.padEnd(width + 1)}  ${cell(value)}`).join('\n') + '\n'
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

/** "3m ago", "2h ago", "4d ago": enough for a person scanning a list. */
export function age(iso: string | null, now = Date.now()): string | null {
  if (!iso) return null
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (seconds < 60) return `${seconds}s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`
  return `${Math.floor(seconds / 86_400)}d ago`
}

export function truncate(text: string | null, max: number): string | null {
  if (text === null) return null
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`
}

export function size(bytes: number | null): string | null {
  if (bytes === null) return null
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`
}

export interface Progress {
  advance(by: number): void
  done(): void
}

/** A bar redrawn in place, only when stdout is a terminal (never in pipes or with --json). */
export function progress(total: number, label: string, enabled: boolean): Progress {
  const out = process.stdout
  if (!enabled || !out.isTTY || total === 0) return {advance() {}, done() {}}
  let current = 0
  const draw = () => {
    const width = 30
    const filled = Math.round((current / total) * width)
    out.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${current}/${total}`)
  }
  draw()
  return {
    advance(by) {
      current = Math.min(total, current + by)
      draw()
    },
    done() {
      out.write('\r\x1b[2K')
    },
  }
}
