/**
 * When an upload still arriving gets looked at: once, after its first MiB is on disk, in the
 * background (the PATCH that brought the bytes never waits for it), a few at a time. The look
 * itself is injected (node.ts gives media's early probe: uploads know nothing of ffmpeg); what
 * a refusal does to the upload is the store's (UploadStore.refuseEarly).
 */
import type {Logger} from 'pino'
import type {ChunkObserver} from './hashing-file-sink.js'

/** Looks at the head of an upload's file: a reason to refuse it now, or undefined. */
export type HeadInspector = (file: string) => Promise<string | undefined>

/** Bytes on disk before the look: enough for any container's header that sits at the front. */
export const INSPECT_AFTER_BYTES = 1 << 20
/** Looks running at once on this node; more wait (and are dropped if their upload completes meanwhile). */
const CONCURRENT_INSPECTIONS = 2
/** Ids remembered as looked at (or waiting), so an upload is looked at once; oldest forgotten first. */
const REMEMBERED = 100_000

export interface InspectionDeps {
  inspect: HeadInspector
  /** Refuses the upload with the reason (no-op if it completed meanwhile). */
  refuse: (id: string, reason: string) => Promise<void>
  log?: Logger | undefined
}

export class EarlyInspection {
  private readonly seen = new Set<string>()
  private readonly waiting = new Map<string, string>()
  private running = 0

  constructor(private readonly deps: InspectionDeps) {}

  /**
   * For one request writing `id` from `offset`: a chunk observer that asks for the look once the
   * file holds INSPECT_AFTER_BYTES, or undefined when this request cannot be the one (the
   * threshold was passed before, or the whole upload is no bigger: it completes first).
   */
  watch(id: string, file: string, offset: number, size: number | null): (ChunkObserver & {position: number}) | undefined {
    if (offset >= INSPECT_AFTER_BYTES || (size !== null && size <= INSPECT_AFTER_BYTES) || this.seen.has(id)) return undefined
    const observer = {
      position: offset,
      update: (chunk: Uint8Array) => {
        observer.position += chunk.length
        if (observer.position >= INSPECT_AFTER_BYTES && observer.position !== size) this.request(id, file)
      },
    }
    return observer
  }

  /** The upload completed or went away: a look still waiting for it is dropped. */
  forget(id: string): void {
    this.waiting.delete(id)
  }

  private request(id: string, file: string): void {
    if (this.seen.has(id)) return
    this.seen.add(id)
    if (this.seen.size > REMEMBERED) this.seen.delete(this.seen.values().next().value!)
    this.waiting.set(id, file)
    this.next()
  }

  private next(): void {
    while (this.running < CONCURRENT_INSPECTIONS && this.waiting.size > 0) {
      const [id, file] = this.waiting.entries().next().value!
      this.waiting.delete(id)
      this.running++
      void this.run(id, file).finally(() => {
        this.running--
        this.next()
      })
    }
  }

  private async run(id: string, file: string): Promise<void> {
    try {
      const reason = await this.deps.inspect(file)
      if (reason) await this.deps.refuse(id, reason)
    } catch (error) {
      this.deps.log?.warn({err: error, uploadId: id}, 'could not look at an arriving upload; it is judged once complete')
    }
  }
}
