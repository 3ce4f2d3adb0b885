/** `ingest nodes ls`. */
import type {Command} from 'commander'
import {adminCommand, withUsageOnError} from './command.js'
import {ExitCode} from './exit-codes.js'
import {age, json, table} from './output.js'

interface NodeView {
  id: string
  url: string | null
  self: boolean
  broker: string | null
  consumes: string[]
  startedAt: string | null
  lastSeenAt: string | null
}

export function nodeCommands(program: Command): void {
  const nodes = withUsageOnError(program.command('nodes').description('the nodes of the deployment'))
  adminCommand(
    nodes,
    'ls',
    'list the nodes (the one answering is marked *)',
    ['ingest nodes ls', 'ingest nodes ls --url http://node-2:1080 --json'],
    async ({client, options, print}) => {
      const answer = await client.get<{nodes: NodeView[]}>('/admin/nodes')
      if (options.json) print(json(answer))
      else
        print(
          table(answer.nodes, [
            ['ID', (n) => `${n.id}${n.self ? ' *' : ''}`],
            ['URL', (n) => n.url],
            ['BROKER', (n) => n.broker],
            ['CONSUMES', (n) => n.consumes.join(',')],
            ['STARTED', (n) => age(n.startedAt)],
            ['LAST SEEN', (n) => age(n.lastSeenAt)],
          ])
        )
      return ExitCode.Ok
    }
  )
}
