/**
 * `ingest requeue ID...` and `ingest requeue --failed|--dead`. A bulk requeue first asks the
 * node which jobs match (a dry run), then requeues them by id in small batches, so a terminal
 * shows a progress bar and every job that could not be requeued is named.
 */
import {Command, Option} from 'commander'
import {adminCommand, kindOption, positiveInt, sinceOption, usageError, type ActionContext} from './command.js'
import {ExitCode} from './exit-codes.js'
import {json, progress} from './output.js'

const BATCH = 10

export interface RequeueItem {
  target: string
  jobId: number | null
  uploadId: string | null
  kind: string | null
  from: string | null
  result: 'requeued' | 'would-requeue' | 'skipped' | 'refused' | 'failed'
  reason: string | null
}

interface RequeueAnswer {
  dryRun: boolean
  items: RequeueItem[]
  summary: Record<string, number>
}

interface RequeueOptions {
  kind?: string
  failed?: boolean
  dead?: boolean
  since?: string
  limit: number
  dryRun?: boolean
  force?: boolean
}

export function requeueCommand(program: Command): void {
  adminCommand<RequeueOptions>(
    program,
    'requeue [ids...]',
    'run failed or dead jobs again: by job id, by upload id (its failed and dead jobs, or the one of --kind), or all with --failed/--dead. The job is reset, its history kept, and a new message published; requeueing twice queues one run.',
    [
      'ingest requeue 42 57',
      'ingest requeue 3f9c0a7d2b1e4c58 --kind transcode',
      'ingest requeue --dead --kind transcode --since 2h --dry-run',
      'ingest requeue --failed --json',
      'ingest requeue 42 --force          # also a running (stuck) job',
    ],
    async (context, ids, command) => {
      const {options} = context
      const bulk = [options.failed, options.dead].filter(Boolean).length
      if (bulk > 1) usageError(command, '--failed and --dead cannot be used together')
      if (bulk === 1 && ids.length > 0) usageError(command, 'give job or upload ids, or --failed/--dead, not both')
      if (bulk === 0 && ids.length === 0) usageError(command, 'nothing to requeue: give job or upload ids, or --failed or --dead')
      if (bulk === 0 && options.since) usageError(command, '--since only applies with --failed or --dead')
      const answer = bulk === 1 ? await requeueAll(context) : await requeueIds(context, ids)
      return report(context, answer)
    }
  )
    .addOption(kindOption())
    .option('--failed', 'every job waiting for a retry')
    .option('--dead', 'every job that gave up')
    .addOption(sinceOption('jobs changed'))
    .option('--limit <n>', 'with --failed/--dead: at most this many (1-10000)', positiveInt(10_000), 1000)
    .option('--dry-run', 'say what would be requeued; change nothing')
    .addOption(new Option('--force', 'also requeue running, queued or succeeded jobs (a stuck worker, a lost message, a re-run)'))
}

async function requeueIds({client, options}: ActionContext<RequeueOptions>, ids: string[]): Promise<RequeueAnswer> {
  const jobIds = ids.filter((id) => /^\d+$/.test(id)).map(Number)
  const uploadIds = ids.filter((id) => !/^\d+$/.test(id))
  const common = {dryRun: Boolean(options.dryRun), force: Boolean(options.force)}
  const answers: RequeueAnswer[] = []
  if (jobIds.length > 0) answers.push(await client.post<RequeueAnswer>('/admin/requeue', {...common, jobIds}))
  if (uploadIds.length > 0) answers.push(await client.post<RequeueAnswer>('/admin/requeue', {...common, uploadIds, ...(options.kind ? {kind: options.kind} : {})}))
  return merge(common.dryRun, answers.flatMap((a) => a.items))
}

async function requeueAll({client, options}: ActionContext<RequeueOptions>): Promise<RequeueAnswer> {
  const selection = {status: options.failed ? 'failed' : 'dead', limit: options.limit, ...(options.kind ? {kind: options.kind} : {}), ...(options.since ? {since: options.since} : {})}
  const planned = await client.post<RequeueAnswer>('/admin/requeue', {...selection, dryRun: true, force: Boolean(options.force)})
  if (options.dryRun) return planned
  const ids = planned.items.filter((i) => i.jobId !== null && i.result === 'would-requeue').map((i) => i.jobId!)
  const items = planned.items.filter((i) => i.result !== 'would-requeue')
  const bar = progress(ids.length, 'requeueing', !options.json)
  try {
    for (let i = 0; i < ids.length; i += BATCH) {
      const batch = ids.slice(i, i + BATCH)
      const answer = await client.post<RequeueAnswer>('/admin/requeue', {jobIds: batch, dryRun: false, force: Boolean(options.force)})
      items.push(...answer.items)
      bar.advance(batch.length)
    }
  } finally {
    bar.done()
  }
  return merge(false, items)
}

function merge(dryRun: boolean, items: RequeueItem[]): RequeueAnswer {
  const summary: Record<string, number> = {}
  for (const item of items) summary[item.result] = (summary[item.result] ?? 0) + 1
  return {dryRun, items, summary}
}

const VERBS: Record<RequeueItem['result'], string> = {requeued: 'requeued', 'would-requeue': 'would requeue', skipped: 'skipped', refused: 'refused', failed: 'failed'}

function describe(item: RequeueItem): string {
  const job = item.jobId !== null ? `job ${item.jobId}` : item.target
  const what = item.kind && item.uploadId ? ` (${item.kind} of upload ${item.uploadId}${item.from ? `, was ${item.from}` : ''})` : ''
  return `${VERBS[item.result].padEnd(13)} ${job}${what}${item.reason ? `: ${item.reason}` : ''}`
}

/** Failed and refused items make the exit code 1; skipped ones (already queued) do not. */
function report({options, print}: ActionContext<RequeueOptions>, answer: RequeueAnswer): number {
  const failures = answer.items.filter((i) => i.result === 'failed' || i.result === 'refused')
  if (options.json) print(json(answer))
  else {
    for (const item of answer.items) if (item.result !== 'requeued' || answer.items.length <= 20) print(`${describe(item)}\n`)
    const counts = Object.entries(answer.summary).map(([result, n]) => `${n} ${VERBS[result as RequeueItem['result']]}`)
    print(answer.items.length === 0 ? 'nothing to requeue\n' : `${counts.join(', ')}${answer.dryRun ? ' (dry run: nothing changed)' : ''}\n`)
  }
  return failures.length > 0 ? ExitCode.ItemsFailed : ExitCode.Ok
}
