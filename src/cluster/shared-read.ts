/**
 * One read of an artifact for several copies sent at once (the peers a chain did not deliver
 * to, or every peer without a chain): each copy gets a branch from its own offset (a peer may
 * resume an interrupted copy), the source is read once from the smallest of them, and every
 * chunk goes to each branch that wants it. The slowest branch sets the pace (back-pressure);
 * a copy that ends however it ends (sent, refused, cut) lets its branch go and the others read on.
 */
import type {Readable} from 'node:stream'
import {PassThrough} from 'node:stream'
import type {OpenBody} from './replica-chain.js'

/** One copy's part of a SharedRead: `open` its bytes (at most once), and say when the copy is `done`. */
export interface ReadShare {
  open: OpenBody
  done(): void
}

interface Branch {
  offset: number
  stream: PassThrough
}

export class SharedRead {
  private undecided: number
  private readonly branches: Branch[] = []
  private started = false

  /** `copies`: how many shares will be taken; the read starts once each has opened or is done. */
  constructor(
    private readonly openSource: OpenBody,
    copies: number
  ) {
    this.undecided = copies
  }

  share(): ReadShare {
    let decided = false
    let branch: Branch | undefined
    const decide = () => {
      if (decided) return
      decided = true
      this.undecided--
      this.startWhenReady()
    }
    return {
      open: async (offset) => {
        if (branch || decided) throw new Error('a share of a read is opened once')
        branch = {offset, stream: new PassThrough({highWaterMark: 1 << 20})}
        this.branches.push(branch)
        decide()
        return branch.stream
      },
      done: () => {
        decide()
        // A copy that ended before its last byte (refused, cut): its branch no longer holds the others back.
        if (branch && !branch.stream.writableFinished) branch.stream.destroy()
      },
    }
  }

  private startWhenReady(): void {
    if (this.started || this.undecided > 0 || this.branches.length === 0) return
    this.started = true
    void this.pump()
  }

  private async pump(): Promise<void> {
    let position = Math.min(...this.branches.map((b) => b.offset))
    let source: NodeJS.ReadableStream | undefined
    try {
      source = await this.openSource(position)
      for await (const chunk of source as AsyncIterable<Buffer>) {
        const open = this.branches.filter((b) => !b.stream.destroyed)
        if (open.length === 0) break
        const end = position + chunk.length
        const drains: Array<Promise<void>> = []
        for (const {offset, stream} of open) {
          if (end <= offset) continue
          if (!stream.write(offset > position ? chunk.subarray(offset - position) : chunk)) drains.push(drained(stream))
        }
        position = end
        await Promise.all(drains)
      }
      for (const {stream} of this.branches) stream.end()
    } catch (error) {
      for (const {stream} of this.branches) stream.destroy(error as Error)
    } finally {
      ;(source as Readable | undefined)?.destroy?.()
    }
  }
}

/** Resolves when `stream` can take more, or will never take any (destroyed). */
function drained(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}
