/**
 * `ingest stack`: the whole stack of one machine under one parent: an upload node (`ingest
 * serve`, which also runs the fan-out jobs) and media workers (`ingest worker --kinds
 * transcode,snapshot`), each a child process with the parent's environment, so they share the
 * node's NODE_ID and DATA_DIR and read originals from disk. They start together and stop
 * together: SIGTERM/SIGINT to the parent stops every child gracefully (exit 0 when they all
 * did); a child that exits on its own stops the others, and the parent exits non-zero.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import os from 'node:os'
import type {Logger} from 'pino'

export interface StackOptions {
  workers: number
  /** How long a child may take to stop after SIGTERM before it is killed (its own SHUTDOWN_TIMEOUT, plus a margin). */
  stopTimeoutMs: number
}

interface Member {
  name: string
  child: ChildProcess
  exited: Promise<number>
}

/** The exit code a child's end stands for: its own code, or 128 + the signal's number. */
function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal ? os.constants.signals[signal] : 0)
}

/** Runs the stack until it stops; resolves with the exit code the parent should end with. */
export function runStack(options: StackOptions, log: Logger): Promise<number> {
  const script = process.argv[1]!
  const commands: Array<{name: string; args: string[]}> = [
    {name: 'serve', args: ['serve']},
    ...Array.from({length: options.workers}, (_, i) => ({name: `worker${i + 1}`, args: ['worker', '--kinds', 'transcode,snapshot']})),
  ]
  const members: Member[] = commands.map(({name, args}) => {
    // A process group of its own: a terminal's Ctrl-C reaches the parent only, which stops each
    // child once. The IPC channel lets a child see the parent die (even by SIGKILL) and stop
    // itself (cli/signals.ts).
    const child = spawn(process.execPath, [...process.execArgv, script, ...args], {detached: true, stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
    const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(exitCodeOf(code, signal))))
    child.once('error', (error) => log.error({err: error, member: name}, 'could not start a stack member'))
    log.info({member: name, pid: child.pid, command: `ingest ${args.join(' ')}`}, 'stack member started')
    return {name, child, exited}
  })

  return new Promise<number>((resolve) => {
    let stopping: Promise<void> | undefined
    let result = 0
    const stopAll = (why: string) =>
      (stopping ??= (async () => {
        log.info({why}, 'stopping the stack')
        for (const m of members) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGTERM')
        const killer = setTimeout(() => {
          for (const m of members) {
            if (m.child.exitCode !== null || m.child.signalCode !== null) continue
            log.warn({member: m.name}, 'stack member did not stop in time: killing it')
            m.child.kill('SIGKILL')
          }
        }, options.stopTimeoutMs)
        const codes = await Promise.all(members.map((m) => m.exited))
        clearTimeout(killer)
        if (codes.some((code) => code !== 0) && result === 0) result = 1
        log.info({exitCodes: Object.fromEntries(members.map((m, i) => [m.name, codes[i]]))}, 'stack stopped')
        resolve(result)
      })())

    for (const m of members) {
      void m.exited.then((code) => {
        if (stopping) return
        log.error({member: m.name, exitCode: code}, 'a stack member exited on its own: stopping the others')
        result = code === 0 ? 1 : code
        void stopAll(`${m.name} exited`)
      })
    }
    let signals = 0
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        for (const m of members) m.child.kill('SIGKILL')
        process.exit(130)
      }
      void stopAll(signal)
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
}
