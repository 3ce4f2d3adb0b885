/**
 * Completion: when the last byte of an upload is stored, its row becomes `completed` and its
 * upload.completed event is written to the outbox, atomically (one statement). The client's final
 * request is answered right after that commit; everything slow happens later, off the outbox.
 */
import type {Logger} from 'pino'
import type {UploadRecord} from '../db/entities/upload.js'
import type {UploadCompleted} from '../events/event-schemas.js'
import type {UploadRepository} from './upload-repository.js'
import type {UploadStore} from './upload-store.js'

export type CompletionListener = (row: UploadRecord) => void

export class UploadCompletion {
  private readonly listeners: CompletionListener[] = []

  constructor(
    private readonly uploads: UploadRepository,
    private readonly store: UploadStore,
    private readonly log: Logger,
    private readonly nodeId: string
  ) {}

  /** Called after each upload this process completes (e.g. to assemble a final upload). */
  onCompleted(listener: CompletionListener): void {
    this.listeners.push(listener)
  }

  /**
   * Idempotent: returns the event if this call completed the upload, null if it already was or
   * if it is a partial upload (which is never announced on its own). `size`, when the caller
   * knows it (the request that took the last byte): then the row is not read at all, only
   * completed (one statement: the row, its digests, the outbox event).
   */
  async complete(id: string, size?: number): Promise<UploadCompleted | null> {
    const digests = await this.store.digests(id, size)
    const completed = await this.uploads.complete(id, digests)
    if (!completed) return null
    const {row, event} = completed
    this.log.info({uploadId: id, size: row.size, sha256: row.sha256, partial: event === null}, 'upload completed')
    for (const listener of this.listeners) listener(row)
    return event
  }

  /**
   * Completes uploads whose bytes all arrived but whose completion never committed (the process
   * died between the two). Run at start-up and with the periodic sweep.
   */
  async recoverStranded(): Promise<number> {
    let recovered = 0
    for (const row of await this.uploads.findStrandedCompletions(this.nodeId, 100)) {
      try {
        if (await this.complete(row.id)) recovered++
      } catch (error) {
        this.log.error({uploadId: row.id, err: error}, 'could not complete a fully received upload')
      }
    }
    return recovered
  }
}
