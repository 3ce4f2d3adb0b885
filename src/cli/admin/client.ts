/**
 * The HTTP client of the admin API. Turns what can go wrong on the way into CliFailure with
 * the exit code scripts rely on (see exit-codes.ts); never prints the token.
 */
import {CliFailure, ExitCode} from './exit-codes.js'

export interface Connection {
  url: string
  token: string
}

const TIMEOUT_MS = 60_000

export class AdminClient {
  private readonly base: URL

  constructor(private readonly connection: Connection) {
    try {
      this.base = new URL(connection.url)
      if (!['http:', 'https:'].includes(this.base.protocol)) throw new Error('not http')
    } catch {
      throw new CliFailure(`--url must be an http(s) URL such as http://127.0.0.1:1080 (got ${JSON.stringify(connection.url.slice(0, 100))})`, ExitCode.Usage)
    }
  }

  get<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
    const url = this.url(path)
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value))
    return this.send<T>('GET', url)
  }

  post<T>(path: string, body: object): Promise<T> {
    return this.send<T>('POST', this.url(path), body)
  }

  delete<T>(path: string): Promise<T> {
    return this.send<T>('DELETE', this.url(path))
  }

  private url(path: string): URL {
    return new URL(path.replace(/^\//, ''), this.base.href.endsWith('/') ? this.base : new URL(`${this.base.href}/`))
  }

  private async send<T>(method: string, url: URL, body?: object): Promise<T> {
    const where = this.base.origin
    let response: Response
    try {
      response = await fetch(url, {
        method,
        headers: {authorization: `Bearer ${this.connection.token}`, accept: 'application/json', ...(body ? {'content-type': 'application/json'} : {})},
        ...(body ? {body: JSON.stringify(body)} : {}),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
    } catch (error) {
      throw new CliFailure(`cannot reach the node at ${where}: ${networkReason(error)} (is it running? check --url or INGEST_URL)`, ExitCode.Unreachable)
    }
    const text = await response.text()
    let json: unknown
    try {
      json = text === '' ? {} : JSON.parse(text)
    } catch {
      throw new CliFailure(`${where} answered ${response.status} with something other than JSON: is --url an ingest node?`, ExitCode.ItemsFailed)
    }
    if (response.ok) return json as T
    const message = (json as {error?: string}).error ?? response.statusText
    if (response.status === 401 || response.status === 403) {
      throw new CliFailure(`the node at ${where} refused the request: ${message} (check --token or INGEST_ADMIN_TOKEN)`, ExitCode.Refused)
    }
    if (response.status === 400) throw new CliFailure(`the node rejected the request: ${message}`, ExitCode.Usage)
    throw new CliFailure(response.status === 404 ? message : `the node at ${where} answered ${response.status}: ${message}`, ExitCode.ItemsFailed)
  }
}

function networkReason(error: unknown): string {
  const cause = (error as {cause?: {code?: string; message?: string}}).cause
  if ((error as Error).name === 'TimeoutError') return `no answer within ${TIMEOUT_MS / 1000} s`
  if (cause?.code === 'ECONNREFUSED') return 'connection refused'
  if (cause?.code === 'ENOTFOUND') return 'unknown host'
  return cause?.message ?? (error as Error).message
}
