/**
 * The header rules of each interop version of the IETF "Resumable Uploads for HTTP" draft we
 * speak, as pure functions: parsing what a client sends and formatting what we answer. The
 * versions differ in small ways (Upload-Incomplete vs Upload-Complete, the append media type,
 * Upload-Limit and its keys, problem types); everything else in this folder is version-free.
 *
 *   interop 3: draft-ietf-httpbis-resumable-upload-01 (Apple URLSession, iOS 17)
 *   interop 4: -02    interop 5: -03 (tus-js-client 'ietf-draft-03')
 *   interop 6: -04, -05 (tus-js-client 'ietf-draft-05')    interop 7: -06 to -08
 *   interop 8: -09 to -12
 */

export const INTEROP_VERSIONS = [3, 4, 5, 6, 7, 8] as const
export type InteropVersion = (typeof INTEROP_VERSIONS)[number]

export const PARTIAL_UPLOAD_TYPE = 'application/partial-upload'

/** Response headers a browser client needs to read (CORS Access-Control-Expose-Headers). */
export const DRAFT_EXPOSED_HEADERS = ['Upload-Draft-Interop-Version', 'Upload-Complete', 'Upload-Incomplete', 'Upload-Limit', 'Accept-Patch']

export const PROBLEM_TYPES = {
  mismatchingOffset: 'https://iana.org/assignments/http-problem-types#mismatching-upload-offset',
  completedUpload: 'https://iana.org/assignments/http-problem-types#completed-upload',
  inconsistentLength: 'https://iana.org/assignments/http-problem-types#inconsistent-upload-length',
} as const
export type ProblemType = keyof typeof PROBLEM_TYPES

/** What a version changes, in one table. */
export interface VersionRules {
  /** -01 marks completeness inversely, with Upload-Incomplete. */
  completenessField: 'Upload-Incomplete' | 'Upload-Complete'
  /** Since -04 an append must be labelled application/partial-upload. */
  appendNeedsPartialUploadType: boolean
  /** Since -04: Upload-Limit in responses; 'expires' became 'max-age' in -06. */
  limitAgeKey: 'expires' | 'max-age' | null
  /** Problem types (RFC 9457) for offset mismatch and completed uploads since -04, lengths since -06. */
  problems: readonly ProblemType[]
  /** An append without the completeness field: -01 reads it as complete, later drafts require it. */
  appendCompleteByDefault: boolean
  /** Since -06: 104 interim responses with the offset reached while the content streams. */
  progressInterims: boolean
}

const RULES: Record<InteropVersion, VersionRules> = {
  3: {completenessField: 'Upload-Incomplete', appendNeedsPartialUploadType: false, limitAgeKey: null, problems: [], appendCompleteByDefault: true, progressInterims: false},
  4: {completenessField: 'Upload-Complete', appendNeedsPartialUploadType: false, limitAgeKey: null, problems: [], appendCompleteByDefault: false, progressInterims: false},
  5: {completenessField: 'Upload-Complete', appendNeedsPartialUploadType: false, limitAgeKey: null, problems: [], appendCompleteByDefault: false, progressInterims: false},
  6: {completenessField: 'Upload-Complete', appendNeedsPartialUploadType: true, limitAgeKey: 'expires', problems: ['mismatchingOffset', 'completedUpload'], appendCompleteByDefault: false, progressInterims: false},
  7: {completenessField: 'Upload-Complete', appendNeedsPartialUploadType: true, limitAgeKey: 'max-age', problems: ['mismatchingOffset', 'completedUpload', 'inconsistentLength'], appendCompleteByDefault: false, progressInterims: true},
  8: {completenessField: 'Upload-Complete', appendNeedsPartialUploadType: true, limitAgeKey: 'max-age', problems: ['mismatchingOffset', 'completedUpload', 'inconsistentLength'], appendCompleteByDefault: false, progressInterims: true},
}

export function rulesOf(version: InteropVersion): VersionRules {
  return RULES[version]
}

/** The interop version a request names: absent (not a draft request), supported, or not. */
export function parseInteropVersion(value: string | undefined): InteropVersion | 'absent' | 'unsupported' {
  if (value === undefined || value.trim() === '') return 'absent'
  const n = parseSfInteger(value)
  return n !== undefined && (INTEROP_VERSIONS as readonly number[]).includes(n) ? (n as InteropVersion) : 'unsupported'
}

/** A structured-field Integer (RFC 9651 3.3.1), non-negative; anything else is ignored (undefined). */
export function parseSfInteger(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const bare = value.split(';')[0]!.trim()
  if (!/^\d{1,15}$/.test(bare)) return undefined
  return Number(bare)
}

/** A structured-field Boolean (RFC 9651 3.3.6): ?1 or ?0; anything else is ignored (undefined). */
export function parseSfBoolean(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined
  const bare = value.split(';')[0]!.trim()
  return bare === '?1' ? true : bare === '?0' ? false : undefined
}

export const formatSfBoolean = (value: boolean): string => (value ? '?1' : '?0')

/** Whether the request marks the upload complete once its content is processed (undefined: not said). */
export function parseCompleteness(version: InteropVersion, get: (name: string) => string | undefined): boolean | undefined {
  const {completenessField} = rulesOf(version)
  const value = parseSfBoolean(get(completenessField))
  if (value === undefined) return undefined
  return completenessField === 'Upload-Incomplete' ? !value : value
}

/** The completeness header of a response, in the version's own field. */
export function completenessHeader(version: InteropVersion, complete: boolean): Record<string, string> {
  const {completenessField} = rulesOf(version)
  return {[completenessField]: formatSfBoolean(completenessField === 'Upload-Incomplete' ? !complete : complete)}
}

export interface UploadLimits {
  /** 0: no limit. */
  maxSize: number
  /** Seconds the upload resource has left, when it expires. */
  maxAgeSeconds?: number
}

/** Upload-Limit (a structured-field Dictionary) for versions that define it; undefined before -04. */
export function formatUploadLimit(version: InteropVersion, limits: UploadLimits): string | undefined {
  const {limitAgeKey} = rulesOf(version)
  if (!limitAgeKey) return undefined
  const members = ['min-size=0']
  if (limits.maxSize > 0) members.push(`max-size=${limits.maxSize}`)
  if (limits.maxAgeSeconds !== undefined) members.push(`${limitAgeKey}=${Math.max(0, Math.floor(limits.maxAgeSeconds))}`)
  return members.join(', ')
}

/**
 * The upload length a request indicates: Upload-Length, or (with the upload marked complete)
 * offset + Content-Length. Both present and different: inconsistent.
 */
export function indicatedLength(input: {uploadLength?: number; complete: boolean; contentLength?: number; offset: number}): number | 'inconsistent' | undefined {
  const fromContent = input.complete && input.contentLength !== undefined ? input.offset + input.contentLength : undefined
  if (input.uploadLength !== undefined && fromContent !== undefined && input.uploadLength !== fromContent) return 'inconsistent'
  return input.uploadLength ?? fromContent
}

/** The media type of a Content-Type value, lower-cased, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase()
}

/**
 * The filename of a Content-Disposition value (RFC 6266): filename* (RFC 8187, UTF-8) wins over
 * filename. Unparseable values give undefined; the caller sanitizes what it keeps.
 */
export function dispositionFilename(value: string | undefined): string | undefined {
  if (!value) return undefined
  const extended = /(?:^|;)\s*filename\*\s*=\s*([^;]+)/i.exec(value)?.[1]?.trim()
  if (extended) {
    const match = /^utf-8'[^']*'(.+)$/i.exec(extended)
    if (match) {
      try {
        return decodeURIComponent(match[1]!)
      } catch {
        // fall back to the plain parameter
      }
    }
  }
  const plain = /(?:^|;)\s*filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]+)/i.exec(value)?.[1]?.trim()
  if (!plain) return undefined
  return plain.startsWith('"') ? plain.slice(1, -1).replace(/\\(.)/g, '$1') : plain
}

/** An RFC 9457 problem document for the draft's problem types. */
export function problemDocument(type: ProblemType, title: string, extra: Record<string, number> = {}): string {
  return JSON.stringify({type: PROBLEM_TYPES[type], title, ...extra})
}
