/**
 * The benchmark's clients, on raw node:http so the client costs as little as possible: a tus
 * 1.0 client (creation + PATCH) and a plain PUT client for the raw limit. Bodies stream from
 * the input file; nothing holds a whole upload in memory.
 */
import {createReadStream} from 'node:fs'
import http from 'node:http'
import {randomUUID} from 'node:crypto'
import type {Readable} from 'node:stream'

export class UnexpectedAnswer extends Error {
  override name = 'UnexpectedAnswer'
  constructor(
    readonly status: number,
    what: string,
    body: string
  ) {
    super(`${what}: HTTP ${status} ${body.trim().slice(0, 200)}`)
  }
}

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

function send(url: URL, method: string, headers: http.OutgoingHttpHeaders, agent: http.Agent, body?: Buffer | Readable): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {method, headers, agent}, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8')}))
      response.on('error', reject)
    })
    request.on('error', reject)
    if (body === undefined) request.end()
    else if (Buffer.isBuffer(body)) request.end(body)
    else {
      body.on('error', (error) => request.destroy(error))
      body.pipe(request)
    }
  })
}

const fileSlice = (file: string, start: number, length: number) =>
  createReadStream(file, {start, end: start + length - 1, highWaterMark: 1 << 20})

/** Anything the large-upload suites can push a file through. */
export interface FileUploader {
  uploadFile(file: string, size: number, chunkSize: number): Promise<void>
  close(): void
}

export class TusClient implements FileUploader {
  private readonly agent = new http.Agent({keepAlive: true, maxSockets: Number.POSITIVE_INFINITY})

  /** endpoint: the creation URL, e.g. http://127.0.0.1:1080/files */
  constructor(private readonly endpoint: string) {}

  async create(length: number): Promise<URL> {
    const metadata = `filename ${Buffer.from(`bench-${randomUUID()}.bin`).toString('base64')}`
    const answer = await send(new URL(this.endpoint), 'POST', {'Tus-Resumable': '1.0.0', 'Upload-Length': String(length), 'Upload-Metadata': metadata, 'Content-Length': '0'}, this.agent)
    const location = answer.headers.location
    if (answer.status !== 201 || !location) throw new UnexpectedAnswer(answer.status, 'creation', answer.body)
    return new URL(location, this.endpoint)
  }

  /** Sends [offset, offset + length) and returns the server's new offset. */
  async patch(upload: URL, offset: number, length: number, body: Buffer | Readable): Promise<number> {
    const headers = {
      'Tus-Resumable': '1.0.0',
      'Content-Type': 'application/offset+octet-stream',
      'Upload-Offset': String(offset),
      'Content-Length': String(length),
    }
    const answer = await send(upload, 'PATCH', headers, this.agent, body)
    const newOffset = Number(answer.headers['upload-offset'])
    if (answer.status !== 204 || newOffset !== offset + length) throw new UnexpectedAnswer(answer.status, `PATCH at ${offset} (offset now ${answer.headers['upload-offset']})`, answer.body)
    return newOffset
  }

  async uploadFile(file: string, size: number, chunkSize: number): Promise<void> {
    const upload = await this.create(size)
    for (let offset = 0; offset < size; ) {
      const length = Math.min(chunkSize, size - offset)
      offset = await this.patch(upload, offset, length, fileSlice(file, offset, length))
    }
  }

  /** Creation, then the whole buffer in one PATCH. Returns the upload's URL. */
  async uploadBuffer(buffer: Buffer): Promise<URL> {
    const upload = await this.create(buffer.byteLength)
    await this.patch(upload, 0, buffer.byteLength, buffer)
    return upload
  }

  async getJson(url: URL): Promise<unknown> {
    const answer = await send(url, 'GET', {}, this.agent)
    if (answer.status !== 200) throw new UnexpectedAnswer(answer.status, `GET ${url.pathname}`, answer.body)
    return JSON.parse(answer.body) as unknown
  }

  close(): void {
    this.agent.destroy()
  }
}

/** The limit: PUT /files/<name>?offset=<n>, each chunk streamed straight to the file. */
export class RawPutClient implements FileUploader {
  private readonly agent = new http.Agent({keepAlive: true})

  constructor(private readonly endpoint: string) {}

  async uploadFile(file: string, size: number, chunkSize: number): Promise<void> {
    const name = randomUUID()
    for (let offset = 0; offset < size; offset += chunkSize) {
      const length = Math.min(chunkSize, size - offset)
      const url = new URL(`${this.endpoint}/${name}?offset=${offset}`)
      const answer = await send(url, 'PUT', {'Content-Length': String(length)}, this.agent, fileSlice(file, offset, length))
      if (answer.status !== 204) throw new UnexpectedAnswer(answer.status, `PUT at ${offset}`, answer.body)
    }
  }

  close(): void {
    this.agent.destroy()
  }
}
