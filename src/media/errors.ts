/**
 * What can go wrong with media, as classes the consumers tell apart: an input no retry
 * will fix (UnplayableMedia), an ffmpeg run that failed (FfmpegFailed, carrying its command
 * line and stderr) and one that ran past its time (FfmpegTimedOut).
 */

/** The input is not something we can play: permanent, a retry would fail the same way. */
export class UnplayableMedia extends Error {
  override name = 'UnplayableMedia'
  /** Always true: consumers/ dead-letters this at once (a retry would fail the same way). */
  readonly permanent = true
  constructor(
    /** Written for the person who uploaded the file. */
    readonly reason: string,
    readonly details?: {commandLine?: string; stderr?: string}
  ) {
    super(reason)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

/** An ffmpeg or ffprobe run that exited badly; may be transient (disk, memory, signal). */
export class FfmpegFailed extends Error {
  override name = 'FfmpegFailed'
  constructor(
    message: string,
    readonly commandLine: string,
    readonly stderr: string
  ) {
    super(`${message}\ncommand: ${commandLine}\nstderr (tail):\n${stderr.slice(-4000)}`)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

/** An ffmpeg run that went past the configured timeout; its whole process tree was killed. */
export class FfmpegTimedOut extends FfmpegFailed {
  override name = 'FfmpegTimedOut'
  constructor(
    readonly timeoutMs: number,
    commandLine: string,
    stderr: string
  ) {
    super(`ffmpeg ran longer than its ${Math.round(timeoutMs / 1000)} s limit and was killed`, commandLine, stderr)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

/** A tool or encoder we need is not installed; says which. */
export class MediaToolsMissing extends Error {
  override name = 'MediaToolsMissing'
  constructor(readonly missing: string[]) {
    super(`media tools missing: ${missing.join('; ')}`)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

/**
 * ffmpeg exited cleanly but wrote no picture, however we asked (input seeking, output seeking,
 * the first frame): the input has nothing to show there. Permanent: the same file gives the same.
 */
export class NoFrameWritten extends Error {
  override name = 'NoFrameWritten'
  readonly permanent = true
  constructor(
    /** What was wanted, for people: "the poster", "thumbnail 3 (at 2.7 s)". */
    readonly what: string,
    readonly commandLine: string,
    readonly stderr: string
  ) {
    super(`ffmpeg wrote no picture for ${what}\ncommand: ${commandLine}\nstderr (tail):\n${stderr.slice(-4000)}`)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

/** Some snapshots could not be made, for good (each a NoFrameWritten); the rest were recorded. */
export class SnapshotsIncomplete extends Error {
  override name = 'SnapshotsIncomplete'
  readonly permanent = true
  constructor(
    readonly missing: NoFrameWritten[],
    made: string
  ) {
    super(`the video has no picture for ${missing.map((m) => m.what).join(', ')} (${made})`)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}
