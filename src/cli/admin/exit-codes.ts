/**
 * Exit codes of the admin commands (docs/admin.md lists them for scripts):
 *   0 everything asked for was done (or there was nothing to do)
 *   1 some items failed (each is named), or the node could not do the request
 *   2 usage error: bad arguments or options (the usage line follows the message)
 *   3 the node could not be reached (wrong --url, node down, timeout)
 *   4 the node refused the admin token (wrong token, or its admin API is disabled)
 */
export const ExitCode = {Ok: 0, ItemsFailed: 1, Usage: 2, Unreachable: 3, Refused: 4} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** A failure that ends the command with a message for people and a given exit code. */
export class CliFailure extends Error {
  override name = 'CliFailure'
  constructor(
    message: string,
    readonly exitCode: ExitCode
  ) {
    super(message)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}
