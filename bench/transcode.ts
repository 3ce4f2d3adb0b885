/**
 * Transcode benchmark (issue 5): the transcode job's wall time against the same ffmpeg
 * commands run directly (alternating, several repetitions, medians; goal: overhead under 5 %),
 * and time-to-ready for a 60 s 1080p clip (first rendition playable) against the whole ladder.
 *
 * "The job" here is what the transcode handler does around ffmpeg without the database: probe,
 * plan, one run per rendition through fluent-ffmpeg with progress and timeouts, temp paths and
 * renames, the master playlist, and hashing every artifact. The baseline replays the exact
 * command lines the job ran, with child_process, one after the other.
 *
 * Knobs: BENCH_TRANSCODE_RUNS (default 3), BENCH_TRANSCODE_SECONDS (overhead clip, default 10),
 * BENCH_TRANSCODE_PRESET (default ultrafast).
 */
import {execFile, spawn} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {loadConfig} from '../src/config/index.js'
import {describeFile} from '../src/media/artifact-files.js'
import {locateMediaTools} from '../src/media/media-tools.js'
import {probeMedia} from '../src/media/probe.js'
import {planRenditions} from '../src/media/rendition-ladder.js'
import {transcodeMedia} from '../src/media/transcode.js'
import type {BenchRecord} from './lib/results.js'
import {alternating, progress, runSuite} from './lib/suite.js'

const SUITE = 'transcode'
const RUNS = Number(process.env.BENCH_TRANSCODE_RUNS ?? 3)
const SECONDS = Number(process.env.BENCH_TRANSCODE_SECONDS ?? 10)
const PRESET = process.env.BENCH_TRANSCODE_PRESET ?? 'ultrafast'
const reproduce = 'npm run bench:transcode'
const tools = locateMediaTools({searchPath: process.env.PATH ?? ''})
const ladder = loadConfig({}, {dataDir: os.tmpdir()}).renditions

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

/** The job: probe, plan, transcode, hash each published file. Returns wall ms, ms to first rendition, and the commands run. */
async function ourJob(source: string, outDir: string) {
  const started = performance.now()
  let ready = 0
  const commands: string[] = []
  const probe = await probeMedia(tools, source)
  await transcodeMedia({
    tools, source, probe, plan: planRenditions(probe, ladder), outDir, preset: PRESET, timeoutMs: 3_600_000,
    onProgress: () => {},
    onCommand: (line) => commands.push(line),
    onRendition: async ({files}) => {
      ready ||= performance.now() - started
      await Promise.all(files.map((f) => describeFile(outDir, f)))
    },
  })
  return {ms: performance.now() - started, readyMs: ready, commands}
}

/** The same command lines, run directly (they are shell-quoted; sh runs them in the right directories). */
async function direct(commands: string[], outDir: string): Promise<number> {
  const started = performance.now()
  for (const line of commands) {
    // HLS runs write relative names into their (temp) directory: recreate and enter it.
    const cwd = /-hls_segment_filename/.test(line) ? path.join(outDir, `direct-${commands.indexOf(line)}`) : outDir
    await new Promise<void>((resolve, reject) => {
      const child = spawn('sh', ['-c', `mkdir -p '${cwd}' && cd '${cwd}' && ${line.replace(/^(\S+)/, '$1 -y').replace(/\S*\.tmp-[0-9a-f]+\.mp4/, `'${path.join(outDir, 'direct.mp4')}'`)}`], {stdio: ['ignore', 'ignore', 'pipe']})
      let err = ''
      child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)))
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`direct ffmpeg exited ${code}: ${err}`))))
    })
  }
  return performance.now() - started
}

function record(name: string, ours: number[], baseline: number[], baselineName: string, goal?: BenchRecord['goal']): BenchRecord {
  const o = median(ours)
  const b = median(baseline)
  return {suite: SUITE, name, ours: o, baseline: b, unit: 'ms', ratio: b === 0 ? null : o / b, better: 'lower', baselineName, runs: ours.length, reproduce, oursRange: range(ours), baselineRange: range(baseline), ...(goal ? {goal} : {})}
}

await runSuite(SUITE, async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'bench-transcode-'))
  try {
    const clip = path.join(work, `clip-${SECONDS}s.mp4`)
    const long = path.join(work, 'clip-60s.mp4')
    progress(SUITE, `generating a ${SECONDS} s and a 60 s 1080p clip`)
    await Promise.all([makeClip(clip, SECONDS), makeClip(long, 60)])

    const ours: number[] = []
    const baseline: number[] = []
    let commands: string[] = []
    // A first, unmeasured job learns the command lines (and warms caches for both sides).
    commands = (await ourJob(clip, path.join(work, 'warm'))).commands
    for (let run = 0; run < RUNS; run++) {
      for (const side of alternating(['ours', 'direct'] as const, run)) {
        const outDir = path.join(work, `${side}-${run}`)
        if (side === 'ours') ours.push((await ourJob(clip, outDir)).ms)
        else baseline.push(await direct(commands, outDir))
        await rm(outDir, {recursive: true, force: true})
        progress(SUITE, `run ${run + 1}/${RUNS} ${side}: ${Math.round((side === 'ours' ? ours : baseline).at(-1)!)} ms`)
      }
    }

    progress(SUITE, 'time-to-ready on the 60 s 1080p clip')
    const sixty = await ourJob(long, path.join(work, 'sixty'))
    return {
      settings: {runs: RUNS, clipSeconds: SECONDS, preset: PRESET, ladder: ladder.map((r) => r.name).join('/'), ffmpeg: tools.ffmpegPath},
      records: [
        record(`transcode job, ${SECONDS} s 1080p, full ladder`, ours, baseline, 'the same ffmpeg commands run directly', {ratio: 1.05, text: 'overhead < 5 %'}),
        {...record('time-to-ready, 60 s 1080p', [sixty.readyMs], [sixty.ms], 'whole ladder done (ready if it waited for every rendition)'), runs: 1},
      ],
      notes: ['The job side includes probe, temp paths and renames, the master playlist and sha256 of every artifact; not the database writes.'],
    }
  } finally {
    await rm(work, {recursive: true, force: true})
  }
})
