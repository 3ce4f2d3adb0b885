/** `--since 2h` or an ISO timestamp, to an instant; undefined when it is neither. Shared by the CLI and the admin API. */
import ms from 'ms'

export function parseSince(text: string, now = Date.now()): Date | undefined {
  const trimmed = text.trim()
  if (/^\d+(\.\d+)?\s*[a-z]+$/i.test(trimmed)) {
    const span = ms(trimmed as ms.StringValue)
    return typeof span === 'number' && Number.isFinite(span) && span >= 0 ? new Date(now - span) : undefined
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(trimmed)) return undefined
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : new Date(at)
}
