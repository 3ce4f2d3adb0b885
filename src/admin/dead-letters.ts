/**
 * The dead-letter queues for an operator: list what is in a kind's queue (with what the jobs
 * table now says about each job), replay (requeue the job, then drop the letter), purge. Works
 * on either broker through its DeadLetterQueues port.
 */
import {BrokerUnavailable, type Broker, type DeadLetterMessage} from '../jobs/broker.js'
import type {JobKind} from '../jobs/job-kinds.js'
import type {JobRepository} from '../jobs/job-repository.js'
import {JobStatus} from '../jobs/job-status.js'
import {jobMessage, parseJobMessage} from '../jobs/messages.js'
import {ServiceUnavailable} from '../errors.js'

export interface DeadLetterView {
  uploadId: string | null
  reason: string | null
  deadAt: string | null
  node: string | null
  /** The job as the jobs table has it now (it may have been requeued since). */
  jobId: number | null
  jobStatus: JobStatus | null
  /** Set when the message cannot be read as a job of this kind: why, and its first bytes. */
  malformed: string | null
}

export interface ReplayItem {
  uploadId: string | null
  jobId: number | null
  result: 'replayed' | 'skipped' | 'failed'
  reason: string | null
}

const BODY_PREVIEW = 200

export class DeadLetterService {
  constructor(
    private readonly jobs: JobRepository,
    private readonly broker: () => Broker | undefined
  ) {}

  async list(kind: JobKind, limit: number): Promise<{kind: JobKind; total: number; letters: DeadLetterView[]}> {
    const {total, letters} = await unavailableAs503(this.ready().peekDeadLetters(kind, limit))
    return {kind, total, letters: await Promise.all(letters.map((letter) => this.view(kind, letter)))}
  }

  /**
   * Replays up to `limit` dead letters, oldest first. A letter whose job is queued or has since
   * succeeded is obsolete and dropped; a malformed one, or one whose job is running, is kept.
   */
  async replay(kind: JobKind, limit: number): Promise<ReplayItem[]> {
    const broker = this.ready()
    const taken = await unavailableAs503(broker.takeDeadLetters(kind, limit))
    const items: ReplayItem[] = []
    try {
      for (const letter of taken.letters) {
        const item = await this.replayOne(kind, letter, broker)
        await (item.result === 'failed' ? letter.keep() : letter.remove())
        items.push(item)
      }
    } finally {
      await taken.done()
    }
    return items
  }

  purge(kind: JobKind): Promise<number> {
    return unavailableAs503(this.ready().purgeDeadLetters(kind))
  }

  private async replayOne(kind: JobKind, letter: DeadLetterMessage, broker: Broker): Promise<ReplayItem> {
    const parsed = parseJobMessage(letter.body, kind)
    if (!parsed.ok) return {uploadId: null, jobId: null, result: 'failed', reason: `malformed message (${parsed.reason}); purge it, it cannot be replayed`}
    const {uploadId} = parsed.message
    const publish = () => broker.publishJob(jobMessage(kind, uploadId))
    try {
      const job = await this.jobs.find(uploadId, kind)
      // No row: the message never got as far as a worker recording it. Send it again as it was.
      if (!job) return await publish().then(() => ({uploadId, jobId: null, result: 'replayed' as const, reason: null}))
      const outcome = await this.jobs.requeue(job.id, {force: false, dryRun: false}, publish)
      if (!outcome) return {uploadId, jobId: job.id, result: 'failed', reason: 'the job vanished during the replay'}
      if (outcome.result === 'requeued') return {uploadId, jobId: job.id, result: 'replayed', reason: null}
      if (outcome.from === JobStatus.Succeeded || outcome.from === JobStatus.Queued) {
        return {uploadId, jobId: job.id, result: 'skipped', reason: `the job is ${outcome.from} already; letter dropped`}
      }
      return {uploadId, jobId: job.id, result: 'failed', reason: `the job is ${outcome.from}; letter kept`}
    } catch (error) {
      return {uploadId, jobId: null, result: 'failed', reason: `could not replay: ${(error as Error).message}`}
    }
  }

  private async view(kind: JobKind, letter: DeadLetterMessage): Promise<DeadLetterView> {
    const base = {reason: letter.reason, deadAt: letter.deadAt?.toISOString() ?? null, node: letter.node}
    const parsed = parseJobMessage(letter.body, kind)
    if (!parsed.ok) {
      const preview = letter.body.subarray(0, BODY_PREVIEW).toString('utf8')
      return {...base, uploadId: null, jobId: null, jobStatus: null, malformed: `${parsed.reason}: ${JSON.stringify(preview)}`}
    }
    const job = await this.jobs.find(parsed.message.uploadId, kind)
    return {...base, uploadId: parsed.message.uploadId, jobId: job?.id ?? null, jobStatus: job?.status ?? null, malformed: null}
  }

  private ready(): Broker {
    const broker = this.broker()
    if (!broker) throw new ServiceUnavailable('the job pipeline of this node has not started yet; try again shortly', {'Retry-After': '2'})
    return broker
  }
}

/** The broker being down is the node's trouble, not the operator's request: 503. */
async function unavailableAs503<T>(work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (error) {
    if (error instanceof BrokerUnavailable) throw new ServiceUnavailable(`the broker is unavailable from this node: ${error.message}`, {'Retry-After': '5'})
    throw error
  }
}
