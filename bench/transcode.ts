/**
 * Transcode benchmark (issue 5): the transcode job's wall time against the same ffmpeg
 * commands run directly (alternating, several repetitions, medians; goal: overhead under 5 %),
 * and time-to-ready for a 60 s 1080p clip (first rendition playable) against the whole ladder.
 *
 * "The job" is the transcode handler itself (MediaJobs.transcode) against PostgreSQL: reload
 * the upload, probe and record it, mark it processing, one ffmpeg run per rendition through
 * fluent-ffmpeg with progress written to the job row and timeouts, temp paths and renames, the
 * master playlist, sha256 of every artifact, the artifact rows with their outbox events, ready
 * at the first rendition. Not timed: the runner's begin/finish around it (bench:pipeline).
 * The baseline replays the exact command lines the job runs (learnt from an unmeasured first
 * run), spawned directly with the same arguments, one after the other as the job runs them;
 * only the output directories differ (each side writes its own).
 *
 * Knobs: BENCH_TRANSCODE_RUNS (default 5: one run varies by about 3 %, as much as the
 * overhead measured), BENCH_TRANSCODE_SECONDS (overhead clip, default 10),
 * BENCH_TRANSCODE_PRESET (default ultrafast). Needs PostgreSQL (TEST_DATABASE_URL).
 */
import {execFile, spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {mkdir, mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import pino from 'pino'
import {loadConfig} from '../src/config/index.js'
import {JobRepository} from '../src/jobs/job-repository.js'
import {MediaJobs} from '../src/media/media-jobs.js'
import {MediaRepository} from '../src/media/media-repository.js'
import {locateMediaTools} from '../src/media/media-tools.js'
import {probeMedia} from '../src/media/probe.js'
import {planRenditions} from '../src/media/rendition-ladder.js'
import {transcodeMedia} from '../src/media/transcode.js'
import {completedUpload, openTestDatabase, type TestDatabase} from '../test/support/pipeline-support.js'
import type {BenchRecord} from './lib/results.js'
import {alternating, progress, runSuite} from './lib/suite.js'

const SUITE = 'transcode'
const RUNS = Number(process.env.BENCH_TRANSCODE_RUNS ?? 5)
const SECONDS = Number(process.env.BENCH_TRANSCODE_SECONDS ?? 10)
const PRESET = process.env.BENCH_TRANSCODE_PRESET ?? 'ultrafast'
const reproduce = 'npm run bench:transcode'
const tools = locateMediaTools({searchPath: process.env.PATH ?? ''})
// Validated as the service validates it (an unknown preset fails here, not in ffmpeg).
const config = loadConfig({}, {dataDir: os.tmpdir(), x264Preset: PRESET})
const ladder = config.renditions
const log = pino({level: 'warn'})

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const range = (xs: number[]): [number, number] => [Math.min(...xs), Math.max(...xs)]

async function makeClip(file: string, seconds: number): Promise<void> {
  await promisify(execFile)(tools.ffmpegPath, [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=1920x1080:rate=25:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '18', '-c:a', 'aac', '-shortest', file,
  ])
}

/** The transcode job of one fresh completed upload of `source`. Returns wall ms and ms to ready. */
async function ourJob(database: TestDatabase, source: string, dataDir: string) {
  const uploadId = await completedUpload(database.db)
  const {job} = await new JobRepository(database.db).begin(uploadId, 'transcode', 'bench')
  let started = 0
  let readyMs = 0
  // The moment the upload turns ready, as the job records it.
  const repository = new (class extends MediaRepository {
    override async markReady(id: string) {
      const moved = await super.markReady(id)
      readyMs ||= performance.now() - started
      return moved
    }
  })(database.db)
  const jobs = new MediaJobs({
    tools: Promise.resolve(tools),
    repository,
    config: {dataDir, nodeId: 'bench', renditions: ladder, x264Preset: config.x264Preset, ffmpegTimeout: 3_600_000, thumbnailCount: 5},
    acquireSource: async () => ({path: source, release: async () => {}}),
  })
  const jobRows = new JobRepository(database.db)
  started = performance.now()
  const result = await jobs.transcode(uploadId, {signal: new AbortController().signal, log, progress: (p) => jobRows.reportProgress(job, p)})
  const ms = performance.now() - started
  if (!result.done) throw new Error(`the transcode job did nothing: ${result.note}`)
  return {ms, readyMs}
}

/** The command lines (as ffmpeg-run prints them) of a transcode of `source`, by running one. */
async function learnCommands(source: string, outDir: string): Promise<string[][]> {
  const commands: string[] = []
  const probe = await probeMedia(tools, source)
  await transcodeMedia({tools, source, probe, plan: planRenditions(probe, ladder), outDir, preset: PRESET, timeoutMs: 3_600_000, onCommand: (line) => commands.push(line)})
  // The MP4 goes to a temp name, and the top HLS rendition is cut from the published MP4.
  const mp4 = path.join(outDir, 'video.mp4')
  return commands.map((line) => unquote(line).map((arg) => (/\.tmp-[0-9a-f]+\.mp4$/.test(arg) ? mp4 : arg)))
}

/** Splits a command line shell-quoted as ffmpeg-run quotes it (bare words, '...' with '\'' inside). */
function unquote(line: string): string[] {
  const args: string[] = []
  let current: string | null = null
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quoted) {
      if (c === "'") quoted = false
      else current += c
    } else if (c === "'") {
      quoted = true
      current ??= ''
    } else if (c === '\\') {
      current = (current ?? '') + line[++i]
    } else if (c === ' ') {
      if (current !== null) args.push(current)
      current = null
    } else current = (current ?? '') + c
  }
  if (current !== null) args.push(current)
  return args
}

/**
 * The same commands run directly: the same binary and arguments, one after the other, stdout
 * and stderr read; the MP4 written to (and the top HLS rendition cut from) this run's own
 * directory, each HLS run in a fresh directory of its own, as the job does.
 */
async function direct(commands: string[][], learntDir: string, outDir: string): Promise<number> {
  const mp4 = path.join(outDir, 'video.mp4')
  const started = performance.now()
  await mkdir(outDir, {recursive: true})
  for (const [index, [binary, ...learnt]] of commands.entries()) {
    const args = learnt.map((arg) => (arg === path.join(learntDir, 'video.mp4') ? mp4 : arg))
    const cwd = args.includes('-hls_segment_filename') ? path.join(outDir, `hls-${index}`) : outDir
    await mkdir(cwd, {recursive: true})
    await new Promise<void>((resolve, reject) => {
      // Pipes on all three, as fluent-ffmpeg spawns it.
      const child = spawn(binary!, args, {cwd, stdio: 'pipe'})
      let err = ''
      child.stdout.resume()
      child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)))
      child.on('error', reject)
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`direct ffmpeg exited ${code}: ${err}`))))
    })
  }
  return performance.now() - started
}

/**
 * CPU seconds (Linux, 100 ticks a second) used by the whole machine and by this process with
 * its children (ffmpeg, once exited): what other work took during a run is the difference.
 * The load average cannot tell, since the suite's own ffmpeg threads count in it.
 */
function cpuSeconds(): {machine: number; ours: number} {
  const machine = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = machine
  const self = readFileSync('/proc/self/stat', 'latin1')
  const [utime = 0, stime = 0, cutime = 0, cstime = 0] = self.slice(self.lastIndexOf(')') + 2).split(' ').slice(11, 15).map(Number)
  return {machine: (user + nice + system + irq + softirq + steal) / 100, ours: (utime + stime + cutime + cstime) / 100}
}

/** Runs `measure` and says what share of the machine's CPUs other processes used meanwhile (PostgreSQL's share of our job included). */
async function withOthersShare<T>(measure: () => Promise<T>): Promise<{result: T; others: number}> {
  const before = cpuSeconds()
  const started = performance.now()
  const result = await measure()
  const after = cpuSeconds()
  const wall = (performance.now() - started) / 1000
  return {result, others: Math.max(0, after.machine - before.machine - (after.ours - before.ours)) / (wall * os.cpus().length)}
}

function record(name: string, ours: number[], baseline: number[], baselineName: string, goal?: BenchRecord['goal']): BenchRecord {
  const o = median(ours)
  const b = median(baseline)
  return {suite: SUITE, name, ours: o, baseline: b, unit: 'ms', ratio: b === 0 ? null : o / b, better: 'lower', baselineName, runs: ours.length, reproduce, oursRange: range(ours), baselineRange: range(baseline), ...(goal ? {goal} : {})}
}

await runSuite(SUITE, async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'bench-transcode-'))
  const database = await openTestDatabase()
  try {
    const clip = path.join(work, `clip-${SECONDS}s.mp4`)
    const long = path.join(work, 'clip-60s.mp4')
    progress(SUITE, `generating a ${SECONDS} s and a 60 s 1080p clip`)
    await Promise.all([makeClip(clip, SECONDS), makeClip(long, 60)])

    const ours: number[] = []
    const baseline: number[] = []
    const loadBefore = os.loadavg()
    const others: number[] = []
    // A first, unmeasured run learns the command lines (and warms caches for both sides).
    const learntDir = path.join(work, 'learnt')
    const commands = await learnCommands(clip, learntDir)
    for (let run = 0; run < RUNS; run++) {
      for (const side of alternating(['ours', 'direct'] as const, run)) {
        const outDir = path.join(work, `${side}-${run}`)
        const {result: ms, others: share} = await withOthersShare(async () =>
          side === 'ours' ? (await ourJob(database, clip, outDir)).ms : direct(commands, learntDir, outDir)
        )
        ;(side === 'ours' ? ours : baseline).push(ms)
        others.push(share)
        await rm(outDir, {recursive: true, force: true})
        progress(SUITE, `run ${run + 1}/${RUNS} ${side}: ${Math.round(ms)} ms (other processes: ${(share * 100).toFixed(1)} % of the CPUs)`)
      }
    }

    progress(SUITE, 'time-to-ready on the 60 s 1080p clip')
    const sixty = await ourJob(database, long, path.join(work, 'sixty'))
    const loadAfter = os.loadavg()
    return {
      settings: {runs: RUNS, clipSeconds: SECONDS, preset: PRESET, ladder: ladder.map((r) => r.name).join('/'), ffmpeg: tools.ffmpegPath},
      records: [
        record(`transcode job, ${SECONDS} s 1080p, full ladder`, ours, baseline, 'the same ffmpeg commands run directly', {ratio: 1.05, text: 'overhead < 5 %'}),
        {...record('time-to-ready, 60 s 1080p', [sixty.readyMs], [sixty.ms], 'whole ladder done (ready if it waited for every rendition)'), runs: 1},
      ],
      notes: [
        'The job side is the transcode handler against PostgreSQL: probe, status moves, progress on the job row, temp paths and renames, the master playlist, sha256 of every artifact, artifact rows and their outbox events. The baseline spawns the same ffmpeg command lines directly, one after the other.',
        `Other processes used ${(Math.min(...others) * 100).toFixed(1)}–${(Math.max(...others) * 100).toFixed(1)} % of the ${os.cpus().length} CPUs during the timed runs (from /proc; PostgreSQL serving the job counts here); load average before the suite ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(1)).join(' ')} (the suite's own ffmpeg threads count in it).`,
      ],
    }
  } finally {
    await database.drop()
    await rm(work, {recursive: true, force: true})
  }
})
