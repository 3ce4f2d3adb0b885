/** `ingest dlq ls|replay|purge --kind K`: the dead-letter queue of a kind of job. */
import {Command, Option} from 'commander'
import {adminCommand, kindOption, positiveInt, usageError, withUsageOnError} from './command.js'
import {ExitCode} from './exit-codes.js'
import {age, json, progress, table, truncate} from './output.js'

interface DeadLetterView {
  uploadId: string | null
  reason: string | null
  deadAt: string | null
  node: string | null
  jobId: number | null
  jobStatus: string | null
  malformed: string | null
}

interface ReplayItem {
  uploadId: string | null
  jobId: number | null
  result: 'replayed' | 'skipped' | 'failed'
  reason: string | null
}

export function dlqCommands(program: Command): void {
  const dlq = withUsageOnError(program.command('dlq').description("inspect, replay and purge a kind's dead-letter queue"))

  adminCommand<{kind: string; limit: number}>(
    dlq,
    'ls',
    'list dead letters, oldest first, with what the jobs table now says about each job',
    ['ingest dlq ls --kind transcode', 'ingest dlq ls --kind snapshot --limit 200 --json'],
    async ({client, options, print}) => {
      const answer = await client.get<{kind: string; total: number; letters: DeadLetterView[]}>(`/admin/dlq/${options.kind}`, {limit: options.limit})
      if (options.json) {
        print(json(answer))
        return ExitCode.Ok
      }
      print(`${answer.total} dead letter${answer.total === 1 ? '' : 's'} in ${answer.kind}${answer.letters.length < answer.total ? ` (showing ${answer.letters.length})` : ''}\n`)
      if (answer.letters.length > 0)
        print(
          table(answer.letters, [
            ['UPLOAD', (l) => l.uploadId ?? 'malformed'],
            ['JOB', (l) => l.jobId],
            ['JOB NOW', (l) => l.jobStatus],
            ['DEAD', (l) => age(l.deadAt)],
            ['NODE', (l) => l.node],
            ['REASON', (l) => truncate(l.malformed ?? l.reason, 70)],
          ])
        )
      return ExitCode.Ok
    }
  )
    .addOption(kindOption(true))
    .option('--limit <n>', 'show at most this many (1-1000)', positiveInt(1000), 50)

  adminCommand<{kind: string; limit: number}>(
    dlq,
    'replay',
    'requeue the jobs of dead letters and drop the letters; letters whose job has since succeeded are dropped, malformed ones kept',
    ['ingest dlq replay --kind transcode', 'ingest dlq replay --kind snapshot --limit 10 --json'],
    async ({client, options, print}) => {
      const bar = progress(options.limit, 'replaying', !options.json)
      let answer: {kind: string; items: ReplayItem[]; summary: Record<string, number>}
      try {
        answer = await client.post(`/admin/dlq/${options.kind}/replay`, {limit: options.limit})
      } finally {
        bar.done()
      }
      const failed = answer.items.filter((i) => i.result === 'failed')
      if (options.json) print(json(answer))
      else {
        for (const item of answer.items) {
          if (item.result !== 'replayed' || answer.items.length <= 20) print(`${item.result.padEnd(8)} ${item.uploadId ? `upload ${item.uploadId}` : 'letter'}${item.jobId ? ` (job ${item.jobId})` : ''}${item.reason ? `: ${item.reason}` : ''}\n`)
        }
        const counts = Object.entries(answer.summary).map(([result, n]) => `${n} ${result}`)
        print(answer.items.length === 0 ? `no dead letters in ${options.kind}\n` : `${counts.join(', ')}\n`)
      }
      return failed.length > 0 ? ExitCode.ItemsFailed : ExitCode.Ok
    }
  )
    .addOption(kindOption(true))
    .option('--limit <n>', 'replay at most this many (1-1000)', positiveInt(1000), 100)

  adminCommand<{kind: string; yes?: boolean}>(
    dlq,
    'purge',
    'delete every dead letter of a kind (the jobs table keeps the dead jobs)',
    ['ingest dlq purge --kind transcode --yes'],
    async ({client, options, print}, _args, command) => {
      if (!options.yes) usageError(command, `purging deletes every dead letter of ${options.kind}: add --yes to confirm`)
      const answer = await client.delete<{kind: string; purged: number}>(`/admin/dlq/${options.kind}`)
      print(options.json ? json(answer) : `purged ${answer.purged} dead letter${answer.purged === 1 ? '' : 's'} from ${answer.kind}\n`)
      return ExitCode.Ok
    }
  )
    .addOption(kindOption(true))
    .addOption(new Option('--yes', 'confirm: the letters cannot be recovered'))
}
