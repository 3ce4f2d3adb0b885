/**
 * Progress recorded while long requests stream: without it, a single PATCH longer than
 * UPLOAD_EXPIRY (a slow link; tus-js-client sends one PATCH per file) would look idle to the
 * expiry and to the status API until its very end. Every request that streams registers its
 * ProgressCheckpoints with the store's one CheckpointBatcher; at each tick (every few seconds,
 * or sooner once a request has passed its byte threshold) the batcher records every request
 * with unsaved bytes in one statement, never two at a time: 10 000 slow uploads cost one UPDATE
 * per tick, not 3 000 a second through a pool of 20. A checkpoint sees the chunks after the
 * hashers, so the bytes it may count are on disk and hashed.
 */
import type {ChunkObserver} from './hashing-file-sink.js'

export interface CheckpointPolicy {
  intervalMs: number
  bytes: number
}

export const DEFAULT_CHECKPOINTS: CheckpointPolicy = {intervalMs: 3000, bytes: 64 << 20}

/** What one checkpoint records: the offset (null: leave it, e.g. while a checksummed append is unverified) and the new expiry. */
export interface CheckpointProgress {
  id: string
  bytesReceived: number | null
  expiresAt: Date | null
}

export interface CheckpointHooks {
  /** What to record now (read at the moment the batch is built). */
  progress: () => CheckpointProgress
  /** After the batch landed: `receiving` false when the upload no longer is (expired, terminated). */
  landed: (receiving: boolean) => Promise<void> | void
  /** A checkpoint that failed (the database); the next one, or the request's end, records it. */
  onError: (error: unknown) => void
}

/** Records a batch; resolves with the ids still receiving (the others were left unchanged). */
export type RecordCheckpoints = (batch: readonly CheckpointProgress[]) => Promise<ReadonlySet<string>>

export class ProgressCheckpoints implements ChunkObserver {
  /** Bytes seen since the last batch that included this request. */
  unsaved = 0
  /** The batch this request is part of, while it is in flight. */
  inFlight: Promise<void> | undefined
  stopped = false

  constructor(
    private readonly batcher: CheckpointBatcher,
    readonly hooks: CheckpointHooks
  ) {
    batcher.register(this)
  }

  update(chunk: Uint8Array): void {
    this.unsaved += chunk.byteLength
    if (this.unsaved >= this.batcher.policy.bytes) this.batcher.soon()
  }

  /** No more checkpoints; resolves once the batch in flight with this request, if any, has landed. */
  async stop(): Promise<void> {
    this.stopped = true
    this.batcher.unregister(this)
    await this.inFlight
  }
}

export class CheckpointBatcher {
  private readonly active = new Set<ProgressCheckpoints>()
  private timer: NodeJS.Timeout | undefined
  private flight: Promise<void> | undefined
  /** A flush was asked for while one was in flight: run it once that one lands. */
  private again = false

  constructor(
    readonly policy: CheckpointPolicy,
    private readonly record: RecordCheckpoints
  ) {}

  register(checkpoints: ProgressCheckpoints): void {
    this.active.add(checkpoints)
    if (!this.timer) {
      this.timer = setInterval(() => this.flush(), this.policy.intervalMs)
      this.timer.unref()
    }
  }

  unregister(checkpoints: ProgressCheckpoints): void {
    this.active.delete(checkpoints)
    if (this.active.size === 0 && this.timer) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  /** A request passed its byte threshold: a batch now, or right after the one in flight. */
  soon(): void {
    if (this.flight) this.again = true
    else this.flush()
  }

  /** Records every registered request with unsaved bytes, in one statement; at most one in flight. */
  flush(): void {
    if (this.flight) return
    const due = [...this.active].filter((c) => c.unsaved > 0 && !c.stopped)
    if (due.length === 0) return
    const batch: CheckpointProgress[] = []
    for (const checkpoints of due) {
      checkpoints.unsaved = 0
      batch.push(checkpoints.hooks.progress())
    }
    const flight = this.land(due, batch).finally(() => {
      for (const checkpoints of due) if (checkpoints.inFlight === flight) checkpoints.inFlight = undefined
      this.flight = undefined
      if (this.again) {
        this.again = false
        this.flush()
      }
    })
    this.flight = flight
    for (const checkpoints of due) checkpoints.inFlight = flight
  }

  private async land(due: readonly ProgressCheckpoints[], batch: readonly CheckpointProgress[]): Promise<void> {
    let receiving: ReadonlySet<string>
    try {
      receiving = await this.record(batch)
    } catch (error) {
      for (const checkpoints of due) checkpoints.hooks.onError(error)
      return
    }
    await Promise.all(
      due.map(async (checkpoints, i) => {
        const stillReceiving = receiving.has(batch[i]!.id)
        // A request that ended meanwhile has its own last write to tell it the upload went away.
        if (!stillReceiving && checkpoints.stopped) return
        try {
          await checkpoints.hooks.landed(stillReceiving)
        } catch (error) {
          checkpoints.hooks.onError(error)
        }
      })
    )
  }
}

/** The interval for an expiry: a few checkpoints fit in one expiry period, however short. */
export function checkpointPolicy(expiryMs: number, base: CheckpointPolicy = DEFAULT_CHECKPOINTS): CheckpointPolicy {
  return expiryMs > 0 ? {...base, intervalMs: Math.max(50, Math.min(base.intervalMs, Math.floor(expiryMs / 4)))} : base
}
