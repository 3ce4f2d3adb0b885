/**
 * What every admin command shares: --url/INGEST_URL, --token/INGEST_ADMIN_TOKEN, --json, help
 * with examples, errors followed by the usage line, and an action that returns its exit code.
 * The CLI reads its environment here and only here (commander's .env()): it is a client and
 * never loads the server's config.
 */
import {Command, InvalidArgumentError, Option} from 'commander'
import {JOB_KINDS, type JobKind} from '../../jobs/job-kinds.js'
import {parseSince} from '../../admin/since.js'
import {AdminClient} from './client.js'
import {CliFailure, ExitCode} from './exit-codes.js'

export const DEFAULT_URL = 'http://127.0.0.1:1080'

export interface CommonOptions {
  url: string
  token?: string
  json?: boolean
}

export interface ActionContext<O> {
  client: AdminClient
  options: O & CommonOptions
  /** Writes to stdout (tables, JSON). */
  print(text: string): void
}

/** The full name as typed, e.g. "ingest dlq replay". */
export function commandPath(command: Command): string {
  const names: string[] = []
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

/** Errors (commander's and ours) end with the usage line and a pointer to --help. */
export function withUsageOnError(command: Command): Command {
  return command.configureOutput({
    outputError: (message, write) => write(`${message.trimEnd()}\nusage: ${commandPath(command)} ${command.usage()}\nsee: ${commandPath(command)} --help\n`),
  })
}

export function usageError(command: Command, message: string): never {
  command.error(`error: ${message}`, {exitCode: ExitCode.Usage, code: 'ingest.usage'})
}

/** A leaf command that talks to a node's admin API. */
export function adminCommand<O>(
  parent: Command,
  nameAndArgs: string,
  description: string,
  examples: string[],
  action: (context: ActionContext<O>, args: string[], command: Command) => Promise<number>
): Command {
  const command = withUsageOnError(parent.command(nameAndArgs).description(description))
  command
    .addOption(new Option('--url <url>', 'the node to talk to').env('INGEST_URL').default(DEFAULT_URL))
    .addOption(new Option('--token <token>', 'the admin token (the node\'s ADMIN_TOKEN)').env('INGEST_ADMIN_TOKEN'))
    .option('--json', 'print JSON with stable field names, for scripts')
    .addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`)
    .action(async (...received: unknown[]) => {
      const options = command.opts<O & CommonOptions>()
      if (!options.token) usageError(command, 'no admin token: pass --token or set INGEST_ADMIN_TOKEN')
      const args = received.slice(0, command.registeredArguments.length).flatMap((a) => (a === undefined ? [] : Array.isArray(a) ? a : [a])) as string[]
      const client = new AdminClient({url: options.url, token: options.token})
      process.exitCode = await action({client, options, print: (text) => process.stdout.write(text)}, args, command)
    })
  return command
}

export function kindOption(required = false): Option {
  const option = new Option('--kind <kind>', `kind of job (${JOB_KINDS.join(', ')})`).choices(JOB_KINDS)
  return required ? option.makeOptionMandatory() : option
}

export function sinceOption(what: string): Option {
  return new Option('--since <when>', `only ${what} since then: a duration (30m, 2h, 7d) or an ISO timestamp`).argParser((value) => {
    if (!parseSince(value)) throw new InvalidArgumentError('expected a duration such as 30m, 2h or 7d, or an ISO timestamp')
    return value
  })
}

export function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`expected a whole number from 1 to ${max}`)
    return n
  }
}

export type {JobKind}
export {CliFailure, ExitCode}
