/** `--since 2h` or an ISO timestamp, to an instant; undefined when it is neither. Shared by the CLI and the admin API. */
import ms from 'ms'

export function parseSince(text: string, now = Date.now()): Date | undefined {
  const trimmed = text.trim()
  if (/^\d+(\.\d+)?\s*[a-z]+$/i.test(trimmed)) {
    const span = ms(trimmed as ms.StringValue)
    return typeof span === 'number' && Number.isFinite(span) && span >= 0 ? instant(now - span) : undefined
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(trimmed)) return undefined
  return instant(Date.parse(trimmed))
}

/**
 * Only instants from 1970 on: a span longer than a Date can go back (99999999999d) is an
 * Invalid Date, and year 0 is one PostgreSQL refuses; nothing here is older than 1970 anyway.
 */
function instant(ms: number): Date | undefined {
  const at = new Date(ms)
  return Number.isNaN(at.getTime()) || at.getTime() < 0 ? undefined : at
}
