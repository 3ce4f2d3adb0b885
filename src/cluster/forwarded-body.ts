/**
 * A client's body forwarded from a non-owner to the upload's owner streams after the signed
 * head, so the head's signature cannot cover it. The forwarder hashes it (sha-256) while it
 * sends, as the bytes pass, and seals the digest in a signed trailer (cluster-signature.ts);
 * the owner hashes what it writes and, at the end of the body, keeps the request's bytes only
 * if the seal holds and the digests agree: bytes altered between nodes are rolled back, as an
 * append whose Upload-Checksum fails is (UploadStore). Nothing is buffered.
 *
 * The forwarded request is chunked (a trailer needs it); the client's Content-Length travels as
 * the signed `X-Cluster-Content-Length` and is put back on the owner, which so sees the
 * request's framing as the client sent it.
 */
import {createHash} from 'node:crypto'
import type {IncomingMessage} from 'node:http'
import {BadRequest, ChecksumMismatch} from '../errors.js'
import {replaceHeader} from '../http/tus.js'
import type {ForwardedBodyCheck} from '../request-context.js'
import {BODY_SEAL_TRAILER, type BodyEnd, type BodySeal} from './cluster-signature.js'

/** Signs one forwarded request, and seals its body with the same nonce. */
export interface ForwardSigner {
  /** The signature header over the headers as sent (lower-case names). */
  sign(headers: Record<string, string>): Record<string, string>
  seal(sha256: Buffer, end: BodyEnd): string
}

const CONTENT_LENGTH = 'x-cluster-content-length'
const SEAL_TRAILER_NAME = 'X-Cluster-Content-Digest'

const carriesBody = (req: IncomingMessage) => req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0

/** The forwarder's side: hashes the client's body as it is piped, then seals it. */
export class ForwardedBody {
  private readonly hash = createHash('sha256')
  private readonly update = (chunk: Buffer) => this.hash.update(chunk)

  static of(req: IncomingMessage, signer: ForwardSigner): ForwardedBody | undefined {
    return carriesBody(req) ? new ForwardedBody(req, signer) : undefined
  }

  private constructor(
    private readonly req: IncomingMessage,
    private readonly signer: ForwardSigner
  ) {}

  /** The client's headers this request replaces (its framing, and anything posing as ours). */
  drops(name: string): boolean {
    const lower = name.toLowerCase()
    return lower === 'content-length' || lower === CONTENT_LENGTH
  }

  headers(): Array<[string, string]> {
    const out: Array<[string, string]> = [
      ['Transfer-Encoding', 'chunked'],
      ['Trailer', SEAL_TRAILER_NAME],
    ]
    const length = this.req.headers['content-length']
    if (length !== undefined) out.push(['X-Cluster-Content-Length', length])
    return out
  }

  /** Starts hashing: call in the tick the body is piped, so the digest covers every chunk sent. */
  observe(): void {
    this.req.on('data', this.update)
  }

  /** The client's trailers (Upload-Checksum), and the seal over the bytes forwarded so far: once. */
  trailers(client: NodeJS.Dict<string>, end: BodyEnd): Record<string, string> {
    // Sealed once: what the client may still send after (nothing is forwarded then) is not hashed.
    this.req.off('data', this.update)
    const out: Record<string, string> = {}
    for (const [name, value] of Object.entries(client)) if (name !== BODY_SEAL_TRAILER && value !== undefined) out[name] = value
    out[SEAL_TRAILER_NAME] = this.signer.seal(this.hash.digest(), end)
    return out
  }
}

/**
 * The owner's side, for a request a peer forwarded (its signature checked): puts the client's
 * framing back and tells the store what the body must hash to, read from the seal once the body
 * has ended. A body without a seal that holds is refused the same way.
 */
export function expectSealedBody(req: IncomingMessage, open: (value: string | undefined) => BodySeal | undefined): ForwardedBodyCheck | undefined {
  if (!carriesBody(req)) return undefined
  const length = req.headers[CONTENT_LENGTH]
  if (typeof length === 'string') {
    replaceHeader(req, 'transfer-encoding', undefined)
    replaceHeader(req, 'content-length', length)
  }
  return {
    verdict(sha256) {
      const seal = open(req.trailers[BODY_SEAL_TRAILER])
      if (!seal) return {error: new BadRequest('the body forwarded by a peer node came without a valid seal (its digest trailer); nothing was stored, retry the request')}
      if (!seal.sha256.equals(sha256)) {
        return {error: new ChecksumMismatch('the body was altered between the node that took the request and the node holding the upload (its sha-256 does not match the sealed digest); nothing was stored, retry the request')}
      }
      return {cut: seal.end === 'cut'}
    },
  }
}
