/**
 * Upload-Metadata: tus gives us untrusted key/value pairs. The filename and filetype we keep
 * must be safe to show and to use near a file system: no path parts, no control characters,
 * bounded length.
 */
const MAX_FILENAME = 255
const MAX_FILETYPE = 127
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/

export function sanitizeFilename(raw: string | null | undefined): string | null {
  if (!raw) return null
  // Keep only the last path segment, whatever separator the client's platform uses.
  const base = raw.split(/[\\/]/).pop() ?? ''
  let name = base.replace(CONTROL, '').trim()
  if (name === '.' || name === '..') name = ''
  name = name.replace(/^\.+/, '')
  if (name.length > MAX_FILENAME) {
    const dot = name.lastIndexOf('.')
    const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : ''
    name = name.slice(0, MAX_FILENAME - ext.length) + ext
  }
  return name || null
}

export function sanitizeFiletype(raw: string | null | undefined): string | null {
  if (!raw) return null
  const type = raw.trim().toLowerCase().split(';')[0]!.trim()
  return type.length <= MAX_FILETYPE && MIME.test(type) ? type : null
}

/** The filename and filetype keys real clients send (Uppy, tus-js-client, TUSKit, tus-java-client). */
export function describeUpload(metadata: Record<string, string | null> | undefined): {filename: string | null; filetype: string | null} {
  const m = metadata ?? {}
  return {
    filename: sanitizeFilename(m.filename ?? m.name ?? m.fileName ?? null),
    filetype: sanitizeFiletype(m.filetype ?? m.type ?? m.mimeType ?? m.contentType ?? null),
  }
}

/**
 * Metadata values are arbitrary bytes (base64 on the wire) and PostgreSQL text cannot hold
 * NUL, so the row keeps them base64-encoded, as the client sent them.
 */
export function encodeMetadata(metadata: Record<string, string | null> | undefined): Record<string, string | null> {
  return Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, v === null ? null : Buffer.from(v, 'utf8').toString('base64')]))
}

export function decodeMetadata(stored: Record<string, string | null>): Record<string, string | null> {
  return Object.fromEntries(Object.entries(stored).map(([k, v]) => [k, v === null ? null : Buffer.from(v, 'base64').toString('utf8')]))
}
