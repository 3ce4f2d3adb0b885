/**
 * The content of a creation or append request as the stream the store reads: bounded (never
 * past the upload's length or the node's maximum), and stoppable, so that a newer request for
 * the same upload can take over (the draft's recommended answer to concurrent requests). How
 * the stream ended tells the handler whether the request content was fully processed.
 */
import type {IncomingMessage} from 'node:http'
import {Transform, type TransformCallback} from 'node:stream'
import {DraftError} from './draft-error.js'

export type BodyEnd = 'complete' | 'interrupted' | 'superseded' | 'too-large'

export class RequestBody extends Transform {
  private received = 0
  private ending: BodyEnd | undefined

  constructor(
    private readonly req: IncomingMessage,
    /** Bytes this request may add; Infinity: no bound. */
    private readonly limit: number,
    private readonly tooLarge: () => DraftError
  ) {
    super()
    req.on('aborted', () => this.stop('interrupted'))
    req.on('error', () => this.stop('interrupted'))
    req.on('close', () => {
      if (!req.complete) this.stop('interrupted')
    })
    req.pipe(this)
  }

  /** How the content ended; 'complete' only when the client's content all arrived. */
  get outcome(): BodyEnd {
    return this.ending ?? 'complete'
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const room = this.limit - this.received
    if (chunk.length > room) {
      // Keep what fits, then refuse: the offset never passes the length.
      if (room > 0) this.push(chunk.subarray(0, room))
      this.received += Math.max(room, 0)
      this.ending = 'too-large'
      this.req.unpipe(this)
      done(this.tooLarge())
      return
    }
    this.received += chunk.length
    done(null, chunk)
  }

  /** Another request wants this upload: stop reading, keep what arrived. */
  supersede(): void {
    this.stop('superseded')
  }

  private stop(how: BodyEnd): void {
    if (this.ending || this.writableEnded || this.destroyed) return
    this.ending = how
    this.req.unpipe(this)
    this.end()
  }
}
