/**
 * Every query on the jobs and job_attempts tables. Each state change is one transaction that
 * also writes a `job.<status>` event to the outbox, so observers hear of exactly the changes
 * that committed.
 */
import type {DataSource, EntityManager} from 'typeorm'
import type {AttemptOutcome, JobAttemptRecord} from '../db/entities/job-attempt.js'
import {JobAttemptEntity} from '../db/entities/job-attempt.js'
import {JobEntity, type JobRecord} from '../db/entities/job.js'
import type {JobKind} from './job-kinds.js'
import {decideStart, JobStatus, PENDING_STATUSES} from './job-status.js'
import {SCHEMA_VERSION} from '../events/event-schemas.js'
import {OutboxRepository} from '../events/outbox-repository.js'
import type {JobChanged} from './messages.js'

/** What the runner knows about a message when it asks to start its job. */
export interface StartRequest {
  /** Delivered before (its consumer died or handed it back): Delivery.deliveryCount > 1. */
  redelivery: boolean
  /** The kind's policy (JOB_POLICIES in job-policies.ts) runs it again on new work. */
  rerun: boolean
}

/** A first delivery, for a kind that does not rerun (tools that start a job directly). */
const FIRST_DELIVERY: StartRequest = {redelivery: false, rerun: false}

/** `run`: an attempt was recorded and the handler runs; otherwise the message is only acked. */
export type StartedJob =
  | {run: true; job: JobRecord; decision: 'start' | 'take-over' | 'rerun'}
  | {run: false; job: JobRecord; decision: 'owe-rerun' | 'duplicate'}

/**
 * How finishing an attempt went: `not-owner` when another attempt took the job over (nothing
 * written); `rerun` when it succeeded owing a rerun, went back to queued and its new message was
 * published; `rerun-unpublished` when that message could not be published (the job is recorded
 * succeeded, still owing the rerun: the caller hands its message back, whose redelivery reruns it).
 */
/** How an attempt ended: `error` only for a failure, `summary` for what a finished one did; `skipped` when it had nothing to do. */
export interface AttemptEnd {
  error: string | null
  summary: string | null
  skipped?: boolean
}

export type FinishResult = 'recorded' | 'rerun' | 'rerun-unpublished' | 'not-owner'

export interface JobWithHistory extends JobRecord {
  history: JobAttemptRecord[]
}

export interface JobFilter {
  status?: JobStatus
  kind?: JobKind
  uploadId?: string
  /** Jobs changed at or after this instant. */
  since?: Date
  limit: number
}

export interface RequeueOptions {
  /** Also requeue jobs that are running, queued or succeeded (a stuck worker, a lost message, a re-run). */
  force: boolean
  dryRun: boolean
}

/** What a requeue did to one job: `skipped` when nothing was needed, `refused` when not allowed. */
export type RequeueResult =
  | {result: 'requeued' | 'would-requeue'; job: JobRecord; from: JobStatus}
  | {result: 'skipped' | 'refused'; job: JobRecord; from: JobStatus; reason: string}

/** Statuses an operator requeues without --force: the job is waiting for a retry, or gave up. */
export const REQUEUEABLE_STATUSES: readonly JobStatus[] = [JobStatus.Failed, JobStatus.Dead]

type Row = Record<string, unknown>

async function run(tx: EntityManager, sql: string, params: unknown[] = []): Promise<{rows: Row[]; count: number}> {
  const result = await tx.queryRunner!.query(sql, params, true)
  return {rows: (result.records ?? []) as Row[], count: result.affected ?? 0}
}

const date = (v: unknown) => (v == null ? null : v instanceof Date ? v : new Date(String(v)))

function toJob(row: Row): JobRecord {
  return {
    id: Number(row.id),
    uploadId: String(row.upload_id),
    kind: row.kind as JobKind,
    status: row.status as JobRecord['status'],
    attempts: Number(row.attempts),
    lastError: (row.last_error as string | null) ?? null,
    summary: (row.summary as string | null) ?? null,
    progress: Number(row.progress),
    workerNode: (row.worker_node as string | null) ?? null,
    createdAt: date(row.created_at)!,
    updatedAt: date(row.updated_at)!,
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
    rerunOwed: row.rerun_owed === true || row.rerun_owed === 't',
    runFirstAttempt: Number(row.run_first_attempt),
  }
}

export class JobRepository {
  constructor(private readonly db: DataSource) {}

  /**
   * Records that jobs are owed for an upload; existing rows are left as they are. With `lock`,
   * the rows stay locked until `tx` ends, so a begin() for one of them waits for what `tx` writes
   * beside it (callers lock in one order: uploads, then kinds, sorted).
   */
  async enqueue(tx: EntityManager, uploadId: string, kinds: readonly JobKind[], options: {lock?: boolean} = {}): Promise<void> {
    if (kinds.length === 0) return
    await run(
      tx,
      `INSERT INTO jobs (upload_id, kind, status) SELECT $1, k, 'queued' FROM unnest($2::text[]) AS k ON CONFLICT (upload_id, kind) DO NOTHING`,
      [uploadId, kinds]
    )
    if (options.lock) await run(tx, `SELECT id FROM jobs WHERE upload_id = $1 AND kind = ANY($2::text[]) ORDER BY kind FOR UPDATE`, [uploadId, kinds])
  }

  /**
   * Decides what a message for a job does (decideStart) and records it, all under the row lock,
   * so messages for one job are decided one at a time against its committed state. Starting an
   * attempt: the job becomes running on this node, with one more attempt and a new history row;
   * an attempt left open by a worker that died is closed as abandoned. A started attempt clears
   * any rerun owed: it begins after the work that asked for it was committed.
   */
  begin(uploadId: string, kind: JobKind, workerNode: string, request: StartRequest = FIRST_DELIVERY): Promise<StartedJob> {
    return this.db.transaction(async (tx) => {
      await this.enqueue(tx, uploadId, [kind])
      const {rows} = await run(tx, `SELECT * FROM jobs WHERE upload_id = $1 AND kind = $2 FOR UPDATE`, [uploadId, kind])
      const current = toJob(rows[0]!)
      const decision = decideStart(current.status, {redelivery: request.redelivery}, {rerun: request.rerun})
      if (decision === 'duplicate') return {run: false, job: current, decision}
      if (decision === 'owe-rerun') {
        const owed = await run(tx, `UPDATE jobs SET rerun_owed = true WHERE id = $1 RETURNING *`, [current.id])
        return {run: false, job: toJob(owed.rows[0]!), decision}
      }
      if (decision === 'take-over') {
        await run(tx, `UPDATE job_attempts SET outcome = 'abandoned', finished_at = now(), error = 'its worker stopped without finishing' WHERE job_id = $1 AND finished_at IS NULL`, [current.id])
      }
      const updated = await run(
        tx,
        `UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_node = $2, progress = 0, rerun_owed = false,
           run_first_attempt = CASE WHEN $3 THEN attempts + 1 ELSE run_first_attempt END,
           started_at = now(), finished_at = NULL, updated_at = now() WHERE id = $1 RETURNING *`,
        [current.id, workerNode, decision === 'rerun']
      )
      const job = toJob(updated.rows[0]!)
      await run(tx, `INSERT INTO job_attempts (job_id, attempt, worker_node) VALUES ($1, $2, $3)`, [job.id, job.attempts, workerNode])
      await this.announce(tx, job, null)
      return {run: true, job, decision}
    })
  }

  /**
   * Ends the attempt `job.attempts` with a status; nothing is written when this attempt no longer
   * owns the job (another worker took it over). A success that owes a rerun puts the job back in
   * the queue instead (its next run gets a fresh attempt budget) and calls `publishRerun` while
   * the row is still locked, so a consumer of the new message waits for this commit and sees the
   * job queued.
   */
  finish(
    job: JobRecord,
    status: typeof JobStatus.Succeeded | typeof JobStatus.Failed | typeof JobStatus.Dead,
    ended: AttemptEnd,
    publishRerun: () => Promise<void>
  ): Promise<FinishResult> {
    const {error, summary} = ended
    return this.db.transaction(async (tx) => {
      const {rows} = await run(tx, `SELECT * FROM jobs WHERE id = $1 AND attempts = $2 AND status = 'running' FOR UPDATE`, [job.id, job.attempts])
      if (rows.length === 0) return 'not-owner'
      let result: FinishResult = 'recorded'
      if (status === JobStatus.Succeeded && toJob(rows[0]!).rerunOwed) {
        result = await publishRerun().then(
          () => 'rerun' as const,
          () => 'rerun-unpublished' as const
        )
      }
      const final = status !== JobStatus.Failed
      const updated =
        result === 'rerun'
          ? await run(
              tx,
              `UPDATE jobs SET status = 'queued', last_error = NULL, summary = $2, progress = 0, worker_node = NULL, started_at = NULL, finished_at = NULL,
                 rerun_owed = false, run_first_attempt = attempts + 1, updated_at = now() WHERE id = $1 RETURNING *`,
              [job.id, summary]
            )
          : await run(
              tx,
              `UPDATE jobs SET status = $2, last_error = $3, summary = $5, updated_at = now(),
                 progress = CASE WHEN $2 = 'succeeded' THEN 100 ELSE progress END,
                 finished_at = CASE WHEN $4 THEN now() ELSE NULL END
               WHERE id = $1 RETURNING *`,
              [job.id, status, error, final, summary]
            )
      await this.closeAttempt(tx, job, ended.skipped ? 'skipped' : status, error, summary)
      await this.announce(tx, toJob(updated.rows[0]!), error, summary)
      return result
    })
  }

  /** The worker is shutting down before this attempt ended: the job waits for another. */
  handBack(job: JobRecord): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const updated = await run(
        tx,
        `UPDATE jobs SET status = 'queued', worker_node = NULL, updated_at = now() WHERE id = $1 AND attempts = $2 AND status = 'running' RETURNING *`,
        [job.id, job.attempts]
      )
      if (updated.count === 0) return false
      await this.closeAttempt(tx, job, 'handed_back', 'its worker shut down; handed back to the queue')
      await this.announce(tx, toJob(updated.rows[0]!), null)
      return true
    })
  }

  async reportProgress(job: JobRecord, percent: number): Promise<void> {
    const value = Math.max(0, Math.min(100, Math.round(percent)))
    await this.db.query(`UPDATE jobs SET progress = $3, updated_at = now() WHERE id = $1 AND attempts = $2 AND status = 'running'`, [job.id, job.attempts, value])
  }

  async forUpload(uploadId: string): Promise<JobWithHistory[]> {
    const jobs = await this.db.getRepository(JobEntity).find({where: {uploadId}, order: {id: 'ASC'}})
    if (jobs.length === 0) return []
    const attempts = await this.db
      .getRepository(JobAttemptEntity)
      .createQueryBuilder('a')
      .where('a.job_id IN (:...ids)', {ids: jobs.map((j) => j.id)})
      .orderBy('a.attempt', 'ASC')
      .getMany()
    return jobs.map((job) => ({...job, history: attempts.filter((a) => a.jobId === job.id)}))
  }

  find(uploadId: string, kind: JobKind): Promise<JobRecord | null> {
    return this.db.getRepository(JobEntity).findOneBy({uploadId, kind})
  }

  /** Work still owed, oldest first (reruns owed too): what the in-process broker queues again after a restart. */
  async pending(limit = 10_000): Promise<JobRecord[]> {
    const rows = (await this.db.query(`SELECT * FROM jobs WHERE status = ANY($1::text[]) OR rerun_owed ORDER BY id LIMIT $2`, [PENDING_STATUSES, limit])) as Row[]
    return rows.map(toJob)
  }

  /** Most recently changed first (the admin API). */
  async list(filter: JobFilter): Promise<JobRecord[]> {
    const rows = (await this.db.query(
      `SELECT * FROM jobs
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)
          AND ($3::text IS NULL OR upload_id = $3) AND ($4::timestamptz IS NULL OR updated_at >= $4)
        ORDER BY updated_at DESC, id DESC LIMIT $5`,
      [filter.status ?? null, filter.kind ?? null, filter.uploadId ?? null, filter.since?.toISOString() ?? null, filter.limit]
    )) as Row[]
    return rows.map(toJob)
  }

  async withHistory(id: number): Promise<JobWithHistory | null> {
    const job = await this.db.getRepository(JobEntity).findOneBy({id})
    if (!job) return null
    const history = await this.db.getRepository(JobAttemptEntity).find({where: {jobId: id}, order: {attempt: 'ASC'}})
    return {...job, history}
  }

  /**
   * Puts a job back in the queue for an operator: status queued, error and progress cleared,
   * its attempt history kept (attempt numbers carry on from it). `publish` sends the new message
   * while the row is still locked, so a consumer that gets it waits for this commit and sees the
   * job queued; if publishing fails, nothing changes. A job already queued is skipped: requeueing
   * twice queues one run. Running, queued and succeeded jobs need `force`; a running one's open
   * attempt is closed as abandoned, and its worker's result is then dropped.
   */
  requeue(id: number, options: RequeueOptions, publish: (job: JobRecord) => Promise<void>): Promise<RequeueResult | null> {
    return this.db.transaction(async (tx) => {
      const {rows} = await run(tx, `SELECT * FROM jobs WHERE id = $1 FOR UPDATE`, [id])
      if (rows.length === 0) return null
      const job = toJob(rows[0]!)
      const from = job.status
      if (!options.force && !REQUEUEABLE_STATUSES.includes(from)) {
        if (from === JobStatus.Queued) return {result: 'skipped', job, from, reason: 'already queued'}
        return {result: 'refused', job, from, reason: `the job is ${from}; use --force to requeue it anyway`}
      }
      if (options.dryRun) return {result: 'would-requeue', job, from}
      if (from === JobStatus.Running) {
        await run(tx, `UPDATE job_attempts SET outcome = 'abandoned', finished_at = now(), error = 'requeued by an operator while running' WHERE job_id = $1 AND finished_at IS NULL`, [id])
      }
      const updated = await run(
        tx,
        `UPDATE jobs SET status = 'queued', last_error = NULL, summary = NULL, progress = 0, worker_node = NULL, started_at = NULL, finished_at = NULL, updated_at = now()
          WHERE id = $1 RETURNING *`,
        [id]
      )
      const requeued = toJob(updated.rows[0]!)
      await this.announce(tx, requeued, null)
      await publish(requeued)
      return {result: 'requeued', job: requeued, from}
    })
  }

  private async closeAttempt(tx: EntityManager, job: JobRecord, outcome: AttemptOutcome, error: string | null, summary: string | null = null): Promise<void> {
    await run(tx, `UPDATE job_attempts SET outcome = $3, error = $4, summary = $5, finished_at = now() WHERE job_id = $1 AND attempt = $2`, [job.id, job.attempts, outcome, error, summary])
  }

  private async announce(tx: EntityManager, job: JobRecord, error: string | null, summary: string | null = null): Promise<void> {
    const event: JobChanged = {
      schemaVersion: SCHEMA_VERSION,
      type: 'job.changed',
      jobId: job.id,
      uploadId: job.uploadId,
      kind: job.kind,
      status: job.status,
      attempt: job.attempts,
      error,
      summary,
      at: new Date().toISOString(),
    }
    await OutboxRepository.append(tx, [{topic: `job.${job.status}`, uploadId: job.uploadId, payload: event}])
  }
}
