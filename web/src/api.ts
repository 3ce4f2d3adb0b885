/**
 * The page's side of the HTTP API: the bearer token (kept in localStorage, sent on every tus
 * request and API call), the server's settings inlined in the page, and the status API's shapes.
 */

const TOKEN_KEY = 'ingest.token'

export interface PageConfig {
  /** tus endpoint, relative to the page's origin. */
  endpoint: string
  maxFileSize: number
  allowedFileTypes: string[]
  /** Bytes per PATCH; 0: one request per file (tus-js-client resumes it from the server's offset). */
  chunkSize: number
  authRequired: boolean
}

export function pageConfig(): PageConfig {
  const element = document.getElementById('ingest-config')
  const config = JSON.parse(element?.textContent ?? '{}') as PageConfig
  // A developer's knob (and the browser test's): smaller chunks make pause/reload points visible.
  const chunkOverride = Number(localStorage.getItem('ingest.chunkSize'))
  return chunkOverride > 0 ? {...config, chunkSize: chunkOverride} : config
}

export const token = {
  get: (): string => localStorage.getItem(TOKEN_KEY) ?? '',
  set: (value: string) => (value ? localStorage.setItem(TOKEN_KEY, value.trim()) : localStorage.removeItem(TOKEN_KEY)),
}

export function authHeaders(): Record<string, string> {
  const value = token.get()
  return value ? {Authorization: `Bearer ${value}`} : {}
}

export interface JobView {
  kind: string
  status: string
  progress: number
  lastError: string | null
}

export interface ArtifactView {
  kind: string
  rendition: string | null
  path: string
  contentType: string
  url: string
}

export interface UploadView {
  id: string
  status: string
  filename: string | null
  size: number | null
  offset: number
  failureReason: string | null
  createdAt: string
  jobs?: JobView[]
  artifacts?: ArtifactView[]
}

export class ApiError extends Error {
  override name = 'ApiError'
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message)
  }
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, {headers: {Accept: 'application/json', ...authHeaders()}, cache: 'no-store'})
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as {error?: string}
    throw new ApiError(res.status, body.error ?? `${res.status} ${res.statusText}`)
  }
  return (await res.json()) as T
}

export const getUpload = (id: string) => getJson<UploadView>(`/api/uploads/${encodeURIComponent(id)}`)
export const listUploads = () => getJson<{uploads: UploadView[]; nextCursor: string | null}>('/api/uploads?limit=100')

/** The id at the end of a tus upload URL (…/files/<id>). */
export function uploadIdOf(uploadUrl: string): string {
  return decodeURIComponent(new URL(uploadUrl, location.href).pathname.split('/').filter(Boolean).pop() ?? '')
}

/** Percent of the processing jobs done (transcode and snapshot; replication is not the user's wait). */
export function processingPercent(upload: UploadView): number {
  const jobs = (upload.jobs ?? []).filter((j) => j.kind === 'transcode' || j.kind === 'snapshot')
  if (jobs.length === 0) return upload.status === 'ready' ? 100 : 0
  return Math.round(jobs.reduce((sum, j) => sum + (j.status === 'succeeded' ? 100 : j.progress), 0) / jobs.length)
}

/** Nothing more will change: a final state and no job still queued or running (a ready video may still gain its stills). */
export const isSettled = (upload: UploadView) =>
  ['ready', 'failed', 'expired', 'terminated'].includes(upload.status) &&
  (upload.jobs ?? []).filter((j) => j.kind === 'transcode' || j.kind === 'snapshot').every((j) => j.status === 'succeeded' || j.status === 'dead')
