/** The admin commands of `ingest`: clients of a node's admin API (src/http/routes/admin.ts). */
import type {Command} from 'commander'
import {dlqCommands} from './dlq.js'
import {jobCommands} from './jobs.js'
import {nodeCommands} from './nodes.js'
import {requeueCommand} from './requeue.js'
import {uploadCommands} from './uploads.js'

export function adminCommands(program: Command): void {
  uploadCommands(program)
  jobCommands(program)
  requeueCommand(program)
  dlqCommands(program)
  nodeCommands(program)
}

export {CliFailure, ExitCode} from './exit-codes.js'
export {withUsageOnError} from './command.js'
