/**
 * Progress recorded while one long request streams: without it, a single PATCH longer than
 * UPLOAD_EXPIRY (a slow link; tus-js-client sends one PATCH per file) would look idle to the
 * expiry and to the status API until its very end. A checkpoint is one UPDATE (the offset and a
 * new expiry), every few seconds or every so many bytes, whichever comes first, never two at a
 * time. It sees the chunks after the hashers, so the bytes it may count are on disk and hashed.
 */
import type {ChunkObserver} from './hashing-file-sink.js'

export interface CheckpointPolicy {
  intervalMs: number
  bytes: number
}

export const DEFAULT_CHECKPOINTS: CheckpointPolicy = {intervalMs: 3000, bytes: 64 << 20}

export interface CheckpointHooks {
  /** Records progress; false when the upload is no longer receiving (expired, terminated). */
  save: () => Promise<boolean>
  /** The upload is gone: the request must stop. */
  onGone: () => void
  /** A checkpoint that failed (the database); the next one, or the request's end, records it. */
  onError: (error: unknown) => void
}

export class ProgressCheckpoints implements ChunkObserver {
  private unsaved = 0
  private saving: Promise<void> | undefined
  private stopped = false
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly policy: CheckpointPolicy,
    private readonly hooks: CheckpointHooks
  ) {
    this.timer = setInterval(() => {
      if (this.unsaved > 0) this.save()
    }, policy.intervalMs)
    this.timer.unref()
  }

  update(chunk: Uint8Array): void {
    this.unsaved += chunk.byteLength
    if (this.unsaved >= this.policy.bytes) this.save()
  }

  /** No more checkpoints; resolves once the one in flight, if any, has landed. */
  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    await this.saving
  }

  private save(): void {
    if (this.saving || this.stopped) return
    this.unsaved = 0
    this.saving = this.hooks
      .save()
      .then(
        (receiving) => {
          if (!receiving && !this.stopped) this.hooks.onGone()
        },
        (error: unknown) => this.hooks.onError(error)
      )
      .finally(() => (this.saving = undefined))
  }
}

/** The interval for an expiry: a few checkpoints fit in one expiry period, however short. */
export function checkpointPolicy(expiryMs: number, base: CheckpointPolicy = DEFAULT_CHECKPOINTS): CheckpointPolicy {
  return expiryMs > 0 ? {...base, intervalMs: Math.max(50, Math.min(base.intervalMs, Math.floor(expiryMs / 4)))} : base
}
