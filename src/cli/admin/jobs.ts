/** `ingest jobs ls|show`. */
import {Command, Option} from 'commander'
import {adminCommand, kindOption, positiveInt, sinceOption, withUsageOnError} from './command.js'
import {ExitCode} from './exit-codes.js'
import {age, fields, json, table, truncate} from './output.js'

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'dead']

export interface JobSummary {
  id: number
  uploadId: string
  kind: string
  status: string
  attempts: number
  progress: number
  /** Why the job failed; null unless it did. */
  lastError: string | null
  /** What its last finished attempt did. */
  summary: string | null
  worker: string | null
  createdAt: string
  updatedAt: string
  startedAt: string | null
  finishedAt: string | null
}

export interface AttemptView {
  attempt: number
  worker: string
  outcome: string | null
  error: string | null
  summary: string | null
  startedAt: string
  finishedAt: string | null
}

export interface JobDetail extends JobSummary {
  history: AttemptView[]
}

const seconds = (a: AttemptView) => (a.finishedAt ? `${((Date.parse(a.finishedAt) - Date.parse(a.startedAt)) / 1000).toFixed(1)}s` : 'running')

export function historyTable(history: AttemptView[], indent = ''): string {
  const text = table(history, [
    ['ATTEMPT', (a) => a.attempt],
    ['WORKER', (a) => a.worker],
    ['OUTCOME', (a) => a.outcome ?? 'running'],
    ['STARTED', (a) => a.startedAt],
    ['TOOK', seconds],
    // A failure's error, else what the attempt did.
    ['ERROR / SUMMARY', (a) => truncate(a.error ?? a.summary, 100)],
  ])
  return text
    .split('\n')
    .map((line) => (line ? indent + line : line))
    .join('\n')
}

export function jobCommands(program: Command): void {
  const jobs = withUsageOnError(program.command('jobs').description('list and inspect jobs (transcode, snapshot, fanout)'))

  adminCommand<{status?: string; kind?: string; since?: string; upload?: string; limit: number}>(
    jobs,
    'ls',
    'list jobs, most recently changed first',
    ['ingest jobs ls --status dead --kind transcode', 'ingest jobs ls --status failed --since 2h --json'],
    async ({client, options, print}) => {
      const {jobs: rows} = await client.get<{jobs: JobSummary[]}>('/admin/jobs', {status: options.status, kind: options.kind, since: options.since, upload: options.upload, limit: options.limit})
      if (options.json) print(json({jobs: rows}))
      else if (rows.length === 0) print('no jobs match\n')
      else
        print(
          table(rows, [
            ['ID', (j) => j.id],
            ['UPLOAD', (j) => j.uploadId],
            ['KIND', (j) => j.kind],
            ['STATUS', (j) => j.status],
            ['ATTEMPTS', (j) => j.attempts],
            ['UPDATED', (j) => age(j.updatedAt)],
            ['LAST ERROR', (j) => truncate(j.lastError, 70)],
          ])
        )
      return ExitCode.Ok
    }
  )
    .addOption(new Option('--status <status>', 'only jobs in this state').choices(STATUSES))
    .addOption(kindOption())
    .addOption(sinceOption('jobs changed'))
    .option('--upload <id>', "only this upload's jobs")
    .option('--limit <n>', 'at most this many (1-1000)', positiveInt(1000), 50)

  adminCommand(
    jobs,
    'show <id>',
    'show a job with its attempt history and errors',
    ['ingest jobs show 42', 'ingest jobs show 42 --json | jq .history'],
    async ({client, options, print}, [id], command) => {
      if (!/^\d+$/.test(id!)) command.error(`error: a job id is a number (got ${JSON.stringify(id)}); for an upload use: ingest uploads show ${id}`, {exitCode: ExitCode.Usage})
      const job = await client.get<JobDetail>(`/admin/jobs/${id}`)
      if (options.json) {
        print(json(job))
        return ExitCode.Ok
      }
      print(
        fields([
          ['job', job.id],
          ['upload', job.uploadId],
          ['kind', job.kind],
          ['status', job.status],
          ['attempts', job.attempts],
          ['progress', `${job.progress}%`],
          ['worker', job.worker],
          // Its first line: an ffmpeg error goes on with the command line and stderr (--json has them).
          ['last error', job.lastError?.split('\n')[0] ?? null],
          ['summary', job.summary],
          ['created', job.createdAt],
          ['updated', `${job.updatedAt} (${age(job.updatedAt)})`],
        ])
      )
      print(job.history.length > 0 ? `\n${historyTable(job.history)}` : '\nno attempts yet\n')
      return ExitCode.Ok
    }
  )
}
