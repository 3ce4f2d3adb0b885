/**
 * Hostile requests, generated from a seeded PRNG: every tus header with random and invalid
 * values, ids and paths that try to leave the data directory, very long and NUL-laden values,
 * huge headers, bodies longer or shorter than declared, slow clients; against /files,
 * /api/uploads, /media, /internal and /admin. Each case says what it is, for the report.
 */
import type {Random} from '../faults/support.js'
import {rawRequest, type SendPlan} from './raw-client.js'

/** Appears in every hostile path and name, so a file created from one is easy to spot anywhere. */
export const MARKER = 'zqfuzz'

export interface FuzzCase extends SendPlan {
  describe: string
  /** Slow clients: allowed to get no answer within hardMs. */
  mayHang?: boolean
}

const HOSTILE_SEGMENTS = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E',
  '.%2e',
  `..%2f..%2f${MARKER}`,
  `..%2F..%2F..%2Fsecret.txt`,
  `%2e%2e%2f%2e%2e%2fsecret.txt`,
  `..%5c..%5c${MARKER}`,
  `..\\..\\${MARKER}`,
  '%00',
  `${MARKER}%00.mp4`,
  '%',
  '%zz',
  '%e0%80%80',
  '%c0%ae%c0%ae',
  '%ff%fe',
  '~',
  '.ready-x',
  'pglite',
  'uploads',
  `${MARKER}-${'a'.repeat(300)}`,
  `${MARKER}${'b'.repeat(9000)}`,
  'a'.repeat(128),
  '%20',
  '%0d%0aSet-Cookie:%20x=1',
  '\u00e9t\u00e9'.normalize('NFD'),
]

const NUMBERS = ['0', '1', '-1', '00', '+5', ' 7', '7 ', '1.5', '1e3', '0x10', 'NaN', 'Infinity', '', '9007199254740993', '99999999999999999999999', '18446744073709551616', '12, 12', 'abc', '\t3', '١٢']

export interface FuzzContext {
  uploadPaths: string[]
  adminToken: string
}

export function generateCase(rng: Random, ctx: FuzzContext): FuzzCase {
  const kind = rng.pick(['tus-create', 'tus-patch', 'tus-patch', 'tus-other', 'api', 'media', 'internal', 'admin', 'garbage', 'huge-headers'] as const)
  switch (kind) {
    case 'tus-create':
      return tusCreate(rng)
    case 'tus-patch':
      return tusPatch(rng, ctx.uploadPaths)
    case 'tus-other':
      return tusOther(rng, ctx.uploadPaths)
    case 'api':
      return simple(rng, rng.pick(['GET', 'HEAD', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS']), `/api/uploads/${rng.chance(0.7) ? hostileSegment(rng) : ''}${rng.chance(0.5) ? query(rng) : ''}`)
    case 'media':
      return simple(rng, rng.pick(['GET', 'GET', 'HEAD', 'POST', 'DELETE']), `/media/${hostilePath(rng)}`, [['Range', rng.pick(['bytes=0-', 'bytes=-1', 'bytes=5-2', 'bytes=0-0,1-1,2-2', 'bytes=99999999999999999999-', 'chars=0-1', 'bytes=', 'bytes=-'])]])
    case 'internal':
      return simple(rng, rng.pick(['GET', 'HEAD', 'PUT', 'POST']), `/internal/${rng.pick(['replicas/', 'uploads/', ''])}${hostilePath(rng)}${rng.chance(0.3) ? '/content' : ''}`, [
        ['X-Cluster-Signature', rng.pick(['', 'x', `node1:${Date.now()}:${'0'.repeat(64)}`, 'a'.repeat(5000)])],
        ['Upload-Offset', rng.pick(NUMBERS)],
        ['X-Artifact-Size', rng.pick(NUMBERS)],
      ])
    case 'admin':
      return admin(rng, ctx.adminToken)
    case 'garbage':
      return garbage(rng)
    case 'huge-headers':
      return hugeHeaders(rng)
  }
}

function hostileSegment(rng: Random): string {
  return rng.chance(0.8) ? rng.pick(HOSTILE_SEGMENTS) : randomToken(rng, rng.int(1, 40))
}

function hostilePath(rng: Random): string {
  return Array.from({length: rng.int(1, 4)}, () => hostileSegment(rng)).join('/')
}

function query(rng: Random): string {
  return rng.pick(['?limit=-1', '?limit=abc', '?limit=100000', '?cursor=%zz', '?cursor=' + 'A'.repeat(3000), '?status=nope', '?status[]=x&status[]=y', '?cursor=eyJ4IjoxfQ', '?limit=5&cursor=bm9wZQ==', '?__proto__[x]=1', ''])
}

function randomToken(rng: Random, n: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~%'
  return Array.from({length: n}, () => alphabet[rng.int(0, alphabet.length - 1)]).join('')
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64')
}

function metadata(rng: Random): string {
  return rng.pick([
    `filename ${b64(`../../${MARKER}.mp4`)}`,
    `filename ${b64('clip.mp4')},filetype ${b64('video/mp4')}`,
    'filename',
    'filename !!!notbase64',
    `filename ${b64('a')},filename ${b64('b')}`,
    ` ${b64('x')}`,
    `fi le ${b64('x')}`,
    `filename ${b64('\0\0\0')}`,
    `filename ${b64('x'.repeat(20000))}`,
    Array.from({length: 300}, (_, i) => `k${i} ${b64(String(i))}`).join(','),
    ',,,',
    `filetype ${b64('text/html\r\nX-Injected: 1')}`,
    `__proto__ ${b64('x')}`,
    `filename ${b64('\u{1F4A9}.mp4')}`,
    '',
  ])
}

function checksum(rng: Random): string {
  return rng.pick(['sha1 ' + b64('nope'), 'sha1', 'md5 2jmj7l5rSw0yVb/vlWAYkK/YBwk=', 'crc32 AAAA', 'sha256 ' + 'A'.repeat(1000), 'sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=', ' sha1  x ', 'SHA1 2jmj7l5rSw0yVb/vlWAYkK/YBwk='])
}

function tusHeaders(rng: Random): Array<[string, string]> {
  const headers: Array<[string, string]> = []
  const maybe = (p: number, name: string, value: () => string) => {
    if (rng.chance(p)) headers.push([name, value()])
  }
  maybe(0.85, 'Tus-Resumable', () => rng.pick(['1.0.0', '1.0.0', '1.0.0', '0.2.2', '', '1.0.0, 1.0.0', 'x'.repeat(500)]))
  maybe(0.5, 'Upload-Metadata', () => metadata(rng))
  maybe(0.15, 'Upload-Concat', () => rng.pick(['partial', 'final;', 'final; /files/../../secret.txt', `final;/files/${MARKER} /files/%2e%2e`, 'final;http://169.254.169.254/files/abc', `final;${'/files/a '.repeat(1500)}`, 'nonsense', 'final;::::']))
  maybe(0.2, 'Upload-Checksum', () => checksum(rng))
  maybe(0.1, 'Upload-Defer-Length', () => rng.pick(['1', '0', '2', 'yes']))
  maybe(0.15, 'X-HTTP-Method-Override', () => rng.pick(['PATCH', 'DELETE', 'HEAD', 'GET', 'TRACE', 'CONNECT', 'patch ', 'x'.repeat(300)]))
  return headers
}

function body(rng: Random): Buffer {
  return Buffer.alloc(rng.pick([0, 1, 100, 4096, 70_000, 300_000]), rng.int(0, 255))
}

/** Content-Length vs the bytes actually sent: equal, shorter (declared more), longer (extra bytes), or chunked. */
function framing(rng: Random, data: Buffer): {headers: Array<[string, string]>; bytes: Buffer} {
  const mode = rng.pick(['exact', 'exact', 'longer', 'chunked', 'invalid-length', 'none'] as const)
  switch (mode) {
    case 'exact':
      return {headers: [['Content-Length', String(data.length)]], bytes: data}
    case 'longer':
      // Bytes beyond Content-Length: the server reads them as the next request on the connection.
      return {headers: [['Content-Length', String(Math.floor(data.length / 2))]], bytes: data}
    case 'chunked': {
      const trailer = rng.chance(0.5) ? `Upload-Checksum: ${checksum(rng)}\r\n` : ''
      const chunk = data.length > 0 ? Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]) : Buffer.alloc(0)
      return {headers: [['Transfer-Encoding', 'chunked'], ...(trailer ? ([['Trailer', 'Upload-Checksum']] as Array<[string, string]>) : [])], bytes: Buffer.concat([chunk, Buffer.from(`0\r\n${trailer}\r\n`)])}
    }
    case 'invalid-length':
      return {headers: [['Content-Length', rng.pick(['-1', 'abc', '1, 2', '99999999999999999999'])]], bytes: data}
    case 'none':
      return {headers: [], bytes: data}
  }
}

function base(rng: Random): Array<[string, string]> {
  return [['Host', rng.chance(0.9) ? '127.0.0.1' : rng.pick(['', 'evil.example', 'a'.repeat(3000), '[::1']) ], ['Connection', 'close']]
}

function tusCreate(rng: Random): FuzzCase {
  const headers: Array<[string, string]> = [...base(rng), ...tusHeaders(rng)]
  if (rng.chance(0.8)) headers.push(['Upload-Length', rng.chance(0.5) ? String(rng.int(0, 1 << 20)) : rng.pick(NUMBERS)])
  const withBody = rng.chance(0.4)
  const data = withBody ? body(rng) : Buffer.alloc(0)
  if (withBody || rng.chance(0.2)) headers.push(['Content-Type', rng.pick(['application/offset+octet-stream', 'application/json', 'text/plain', '', 'application/offset+octet-stream; x=1'])])
  const {headers: framingHeaders, bytes} = framing(rng, data)
  const target = rng.pick(['/files/', '/files', '/files/?x=1', `/files/${hostileSegment(rng)}`, '/files//', '/files/../files/'])
  return {describe: `POST ${target.slice(0, 80)} ${JSON.stringify(headers.slice(2)).slice(0, 300)} body ${bytes.length}`, parts: [rawRequest('POST', target, [...headers, ...framingHeaders], bytes)]}
}

function tusPatch(rng: Random, uploadPaths: string[]): FuzzCase {
  const target = rng.chance(0.6) && uploadPaths.length > 0 ? rng.pick(uploadPaths) : `/files/${hostileSegment(rng)}`
  const headers: Array<[string, string]> = [...base(rng), ...tusHeaders(rng)]
  headers.push(['Content-Type', rng.pick(['application/offset+octet-stream', 'application/offset+octet-stream', 'application/octet-stream', 'APPLICATION/OFFSET+OCTET-STREAM', ''])])
  if (rng.chance(0.9)) headers.push(['Upload-Offset', rng.chance(0.5) ? String(rng.int(0, 400_000)) : rng.pick(NUMBERS)])
  if (rng.chance(0.2)) headers.push(['Upload-Length', rng.pick(NUMBERS)])
  const {headers: framingHeaders, bytes} = framing(rng, body(rng))
  const method = rng.chance(0.85) ? 'PATCH' : 'POST'
  return {describe: `${method} ${target.slice(0, 80)} ${JSON.stringify(headers.slice(2)).slice(0, 300)} body ${bytes.length}`, parts: [rawRequest(method, target, [...headers, ...framingHeaders], bytes)]}
}

function tusOther(rng: Random, uploadPaths: string[]): FuzzCase {
  const method = rng.pick(['HEAD', 'GET', 'DELETE', 'OPTIONS', 'PUT', 'PROPFIND'])
  const target = rng.chance(0.3) && uploadPaths.length > 0 ? rng.pick(uploadPaths) : `/files/${hostileSegment(rng)}`
  return simple(rng, method, target, tusHeaders(rng))
}

function simple(rng: Random, method: string, target: string, extra: Array<[string, string]> = []): FuzzCase {
  const headers = [...base(rng), ...extra]
  return {describe: `${method} ${target.slice(0, 120)} ${JSON.stringify(extra).slice(0, 200)}`, parts: [rawRequest(method, target, headers)]}
}

function garbage(rng: Random): FuzzCase {
  const variants: Array<[string, Buffer]> = [
    ['NUL in the path', Buffer.from(`GET /files/${MARKER}\0x HTTP/1.1\r\nHost: a\r\n\r\n`, 'latin1')],
    ['NUL in a header value', Buffer.from(`HEAD /files/abc HTTP/1.1\r\nHost: a\r\nTus-Resumable: 1.0.0\0\r\n\r\n`, 'latin1')],
    ['bad header name', Buffer.from(`POST /files/ HTTP/1.1\r\nHost: a\r\nUpload Length: 5\r\n\r\n`, 'latin1')],
    // The first byte can start no request (a control byte): a short run of random bytes that happens
    // to be a valid request-line prefix (a lone "P") rightly waits for the rest, up to headersTimeout.
    ['random bytes', Buffer.from([rng.int(0, 8), ...Array.from({length: rng.int(0, 1999)}, () => rng.int(0, 255))])],
    ['HTTP/0.9', Buffer.from('GET /healthz\r\n\r\n')],
    ['HTTP/2 preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
    ['absolute-form target', Buffer.from(`GET http://127.0.0.1/../../secret.txt HTTP/1.1\r\nHost: a\r\n\r\n`)],
    ['asterisk target', Buffer.from('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n')],
    ['both CL and TE', Buffer.from('PATCH /files/abc HTTP/1.1\r\nHost: a\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n')],
    ['bad chunk size', Buffer.from('POST /files/ HTTP/1.1\r\nHost: a\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 3\r\nContent-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n')],
    ['unknown method', Buffer.from(`FOO /files/ HTTP/1.1\r\nHost: a\r\n\r\n`)],
    ['bare LF', Buffer.from(`GET /healthz HTTP/1.1\nHost: a\n\n`)],
    ['obs-fold header', Buffer.from(`HEAD /files/abc HTTP/1.1\r\nHost: a\r\nTus-Resumable: 1.0.0\r\n  continued\r\n\r\n`)],
    ['double Upload-Offset', Buffer.from(`PATCH /files/abc HTTP/1.1\r\nHost: a\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nUpload-Offset: 5\r\nContent-Length: 0\r\n\r\n`)],
  ]
  const [what, bytes] = rng.pick(variants)
  return {describe: `garbage: ${what}`, parts: [bytes]}
}

function hugeHeaders(rng: Random): FuzzCase {
  const mode = rng.pick(['one-huge', 'many', 'huge-metadata', 'huge-url'] as const)
  const target = `/files/${rng.pick(['', MARKER])}`
  let headers: Array<[string, string]> = [['Host', 'a'], ['Tus-Resumable', '1.0.0'], ['Upload-Length', '10'], ['Connection', 'close']]
  if (mode === 'one-huge') headers.push(['X-Big', 'x'.repeat(rng.pick([8000, 17_000, 70_000, 1_000_000]))])
  if (mode === 'many') headers = headers.concat(Array.from({length: rng.pick([99, 150, 2000])}, (_, i) => [`X-H${i}`, String(i)] as [string, string]))
  if (mode === 'huge-metadata') headers.push(['Upload-Metadata', `filename ${b64('y'.repeat(rng.pick([10_000, 40_000])))}`])
  const path = mode === 'huge-url' ? `/files/${'u'.repeat(rng.pick([5000, 20_000, 100_000]))}` : target
  return {describe: `huge headers: ${mode}`, parts: [rawRequest('POST', path, headers)]}
}

function admin(rng: Random, token: string): FuzzCase {
  const authorization = rng.chance(0.6) ? `Bearer ${token}` : rng.pick(['Bearer x', 'Bearer ', 'Basic Zm9vOmJhcg==', `Bearer ${'t'.repeat(4000)}`])
  const method = rng.pick(['GET', 'GET', 'POST', 'DELETE'])
  const target = `/admin/${rng.pick(['uploads', 'jobs', 'requeue', 'dlq/transcode', 'dlq/nope', 'nodes', 'uploads/', 'jobs/'])}${rng.chance(0.5) ? hostileSegment(rng) : ''}${rng.pick([query(rng), '?owner=%00', '?upload=%00x', '?since=%00', '?since=-5h', '?kind=%00', ''])}`
  const json = rng.pick(['{"uploadIds":["\\u0000"]}', '{"jobIds":[-1]}', '{"uploadIds":[]}', '{"status":"dead","dryRun":true}', '{"limit":"x"}', '{', 'null', '[]', `{"uploadIds":["${'a'.repeat(200)}"]}`, '{"__proto__":{"x":1}}'])
  const body = method === 'POST' ? Buffer.from(json) : undefined
  const headers: Array<[string, string]> = [...base(rng), ['Authorization', authorization], ...(body ? ([['Content-Type', rng.pick(['application/json', 'text/plain'])], ['Content-Length', String(body.length)]] as Array<[string, string]>) : [])]
  return {describe: `${method} ${target.slice(0, 120)} ${body?.toString() ?? ''}`, parts: [rawRequest(method, target, headers, body)]}
}

/** Bounded slow clients: headers a byte at a time, or a body that trickles. */
export function slowCase(rng: Random, uploadPaths: string[]): FuzzCase {
  if (rng.chance(0.5) || uploadPaths.length === 0) {
    const request = rawRequest('GET', '/healthz', [['Host', 'a'], ['Connection', 'close']])
    const step = rng.int(50, 300)
    const parts: Array<Buffer | number> = []
    for (let i = 0; i < request.length && i < 40; i++) parts.push(request.subarray(i, i + 1), step)
    if (rng.chance(0.5)) parts.push(request.subarray(Math.min(40, request.length)))
    return {describe: `slow headers (${step} ms a byte)`, parts, hardMs: 20_000, mayHang: true}
  }
  const target = rng.pick(uploadPaths)
  const head = rawRequest('PATCH', target, [['Host', 'a'], ['Connection', 'close'], ['Tus-Resumable', '1.0.0'], ['Content-Type', 'application/offset+octet-stream'], ['Upload-Offset', '0'], ['Content-Length', '100000']])
  const parts: Array<Buffer | number> = [head]
  for (let i = 0; i < 20; i++) parts.push(Buffer.alloc(100, 1), rng.int(100, 400))
  return {describe: `slow body on ${target}`, parts, hardMs: 20_000, mayHang: true}
}
