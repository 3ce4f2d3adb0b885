/**
 * Requeueing jobs for an operator: resolves what was asked (job ids, upload ids, or every failed
 * or dead job) to jobs, and requeues each one through the job repository, publishing its new
 * message through the node's broker. Each job gets its own item in the answer, so a bulk run
 * names every one that could not be requeued.
 */
import type {Broker} from '../jobs/broker.js'
import type {JobKind} from '../jobs/job-kinds.js'
import {REQUEUEABLE_STATUSES, type JobRepository, type RequeueOptions, type RequeueResult} from '../jobs/job-repository.js'
import {JobStatus} from '../jobs/job-status.js'
import {jobMessage} from '../jobs/messages.js'
import {ServiceUnavailable} from '../errors.js'

export type RequeueTarget =
  | {jobIds: number[]}
  | {uploadIds: string[]; kind?: JobKind}
  | {status: typeof JobStatus.Failed | typeof JobStatus.Dead; kind?: JobKind; since?: Date; limit: number}

/** One item of a requeue: `failed` means it could not be done (the CLI exits 1 and names it). */
export interface RequeueItem {
  /** What was asked for, as the operator wrote it (a job id, or "upload <id>"). */
  target: string
  jobId: number | null
  uploadId: string | null
  kind: JobKind | null
  /** The job's status before the requeue. */
  from: JobStatus | null
  result: 'requeued' | 'would-requeue' | 'skipped' | 'refused' | 'failed'
  reason: string | null
}

export class JobRequeue {
  constructor(
    private readonly jobs: JobRepository,
    /** The node's broker, once its pipeline has started. */
    private readonly broker: () => Broker | undefined
  ) {}

  async requeue(target: RequeueTarget, options: RequeueOptions): Promise<RequeueItem[]> {
    const broker = this.broker()
    if (!broker) throw new ServiceUnavailable('the job pipeline of this node has not started yet; try again shortly', {'Retry-After': '2'})
    const items: RequeueItem[] = []
    for (const [label, jobId] of await this.resolve(target, options, items)) {
      items.push(await this.requeueOne(label, jobId, options, broker))
    }
    return items
  }

  /** Job ids to requeue, each with what the operator asked for; what matches no job goes straight to `items`. */
  private async resolve(target: RequeueTarget, options: RequeueOptions, items: RequeueItem[]): Promise<Array<[string, number]>> {
    if ('jobIds' in target) return target.jobIds.map((id) => [String(id), id])
    if ('status' in target) {
      const rows = await this.jobs.list({status: target.status, ...(target.kind ? {kind: target.kind} : {}), ...(target.since ? {since: target.since} : {}), limit: target.limit})
      return rows.map((job) => [String(job.id), job.id])
    }
    const out: Array<[string, number]> = []
    for (const uploadId of target.uploadIds) {
      const label = `upload ${uploadId}`
      const all = await this.jobs.list({uploadId, limit: 100})
      const wanted = target.kind
        ? all.filter((job) => job.kind === target.kind)
        : all.filter((job) => REQUEUEABLE_STATUSES.includes(job.status) || (options.force && job.status === JobStatus.Running))
      if (wanted.length === 0) {
        const reason = all.length === 0 ? 'no jobs for this upload' : target.kind ? `no ${target.kind} job for this upload` : 'none of its jobs failed'
        items.push({target: label, jobId: null, uploadId, kind: target.kind ?? null, from: null, result: all.length === 0 || target.kind ? 'failed' : 'skipped', reason})
      }
      for (const job of wanted) out.push([label, job.id])
    }
    return out
  }

  private async requeueOne(target: string, jobId: number, options: RequeueOptions, broker: Broker): Promise<RequeueItem> {
    let outcome: RequeueResult | null
    try {
      outcome = await this.jobs.requeue(jobId, options, (job) => broker.publishJob(jobMessage(job.kind, job.uploadId)))
    } catch (error) {
      return {target, jobId, uploadId: null, kind: null, from: null, result: 'failed', reason: `could not requeue: ${(error as Error).message}`}
    }
    if (!outcome) return {target, jobId, uploadId: null, kind: null, from: null, result: 'failed', reason: 'no such job'}
    const {job, from} = outcome
    return {target, jobId, uploadId: job.uploadId, kind: job.kind, from, result: outcome.result, reason: 'reason' in outcome ? outcome.reason : null}
  }
}
