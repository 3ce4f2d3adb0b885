/** `ingest uploads ls|show`. */
import {Command, Option} from 'commander'
import {adminCommand, positiveInt, sinceOption, withUsageOnError} from './command.js'
import {ExitCode} from './exit-codes.js'
import {historyTable, type JobDetail} from './jobs.js'
import {age, fields, json, size, table, truncate} from './output.js'

const STATUSES = ['uploading', 'completed', 'processing', 'ready', 'failed', 'expired', 'terminated']

export interface UploadView {
  id: string
  status: string
  filename: string | null
  size: number | null
  offset: number
  owner: string | null
  node: string
  failureReason: string | null
  sha256: string | null
  createdAt: string
  completedAt: string | null
}

export function uploadCommands(program: Command): void {
  const uploads = withUsageOnError(program.command('uploads').description('list and inspect uploads (any owner)'))

  adminCommand<{status?: string; owner?: string; since?: string; limit: number}>(
    uploads,
    'ls',
    'list uploads, newest first',
    ['ingest uploads ls --status failed --since 2h', 'ingest uploads ls --owner alice --limit 10 --json'],
    async ({client, options, print}) => {
      const {uploads: rows} = await client.get<{uploads: UploadView[]}>('/admin/uploads', {status: options.status, owner: options.owner, since: options.since, limit: options.limit})
      if (options.json) print(json({uploads: rows}))
      else if (rows.length === 0) print('no uploads match\n')
      else
        print(
          table(rows, [
            ['ID', (u) => u.id],
            ['STATUS', (u) => u.status],
            ['OWNER', (u) => u.owner],
            ['FILENAME', (u) => truncate(u.filename, 40)],
            ['SIZE', (u) => size(u.size)],
            ['NODE', (u) => u.node],
            ['CREATED', (u) => age(u.createdAt)],
          ])
        )
      return ExitCode.Ok
    }
  )
    .addOption(new Option('--status <status>', 'only uploads in this state').choices(STATUSES))
    .option('--owner <owner>', "only this owner's uploads (the JWT subject)")
    .addOption(sinceOption('uploads created'))
    .option('--limit <n>', 'at most this many (1-1000)', positiveInt(1000), 50)

  adminCommand(
    uploads,
    'show <id>',
    'show an upload with its jobs and their attempts',
    ['ingest uploads show 3f9c0a7d2b1e4c58', 'ingest uploads show 3f9c0a7d2b1e4c58 --json | jq .jobs'],
    async ({client, options, print}, [id]) => {
      const upload = await client.get<UploadView & {jobs: JobDetail[]}>(`/admin/uploads/${encodeURIComponent(id!)}`)
      if (options.json) {
        print(json(upload))
        return ExitCode.Ok
      }
      print(
        fields([
          ['upload', upload.id],
          ['status', upload.status],
          ['filename', upload.filename],
          ['size', size(upload.size)],
          ['received', size(upload.offset)],
          ['owner', upload.owner],
          ['node', upload.node],
          ['sha256', upload.sha256],
          ['failure', upload.failureReason],
          ['created', `${upload.createdAt} (${age(upload.createdAt)})`],
          ['completed', upload.completedAt],
        ])
      )
      for (const job of upload.jobs) {
        print(`\njob ${job.id}  ${job.kind}  ${job.status}  attempts ${job.attempts}${job.lastError ? `  last error: ${job.lastError}` : ''}${job.summary ? `  summary: ${job.summary}` : ''}\n`)
        if (job.history.length > 0) print(historyTable(job.history, '  '))
      }
      if (upload.jobs.length === 0) print('\nno jobs\n')
      return ExitCode.Ok
    }
  )
}
