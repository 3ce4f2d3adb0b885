/** Raw HTTP over loopback, so tests control every header and see every answer as sent. */
import http from 'node:http'

export interface RawResponse {
  status: number
  statusText: string
  headers: http.IncomingHttpHeaders
  body: string
}

export function request(
  method: string,
  url: string,
  options: {headers?: Record<string, string | number | undefined>; body?: Buffer | string} = {}
): Promise<RawResponse> {
  const headers = Object.fromEntries(Object.entries(options.headers ?? {}).filter(([, v]) => v !== undefined)) as Record<string, string | number>
  return new Promise((resolve, reject) => {
    const req = http.request(url, {method, headers}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () =>
        resolve({status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks).toString('utf8')})
      )
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

export const TUS = {'Tus-Resumable': '1.0.0'}
export const PATCH_HEADERS = {...TUS, 'Content-Type': 'application/offset+octet-stream'}

export function b64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64')
}

/** Creates an upload and returns its absolute URL. */
export async function createUpload(base: string, length: number | null, extra: Record<string, string> = {}): Promise<string> {
  const headers: Record<string, string> = {...TUS, ...extra}
  if (length === null) headers['Upload-Defer-Length'] = '1'
  else headers['Upload-Length'] = String(length)
  const res = await request('POST', `${base}/files/`, {headers})
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${res.body}`)
  return new URL(String(res.headers.location), base).toString()
}
