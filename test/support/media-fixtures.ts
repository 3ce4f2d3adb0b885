/**
 * Media the media tests generate with ffmpeg's lavfi sources, and ffprobe helpers to check
 * what our code produced. Tests call the binaries directly: they check the module, so they do
 * not go through it.
 */
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm, stat, truncate, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {locateMediaTools, type MediaTools} from '../../src/media/media-tools.js'

const exec = promisify(execFile)

export const tools: MediaTools = locateMediaTools({searchPath: process.env.PATH ?? ''})

const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast']
const AAC = ['-c:a', 'aac', '-b:a', '96k']

async function ffmpeg(args: string[]): Promise<void> {
  await exec(tools.ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', ...args], {maxBuffer: 16 << 20})
}

const lavfi = (graph: string) => ['-f', 'lavfi', '-i', graph]

/** A 2 s, 320x240 clip with a tone: the smallest input that runs the whole pipeline. */
export async function writeSmallClip(file: string): Promise<void> {
  await ffmpeg([...lavfi('testsrc2=size=320x240:rate=25:duration=2'), ...lavfi('sine=frequency=440:duration=2'), ...X264, '-c:a', 'aac', '-shortest', file])
}

export interface Fixtures {
  dir: string
  /** 1920x1080, 2 s, with a tone. */
  landscape1080: string
  /** Stored 640x360 with rotate=90: shown 360x640. */
  portraitRotated: string
  /** 639x359 (odd both ways), 2 s, no audio. */
  oddSize: string
  /** 3 s, 640x360, the first second black, with a tone. */
  threeSecondsBlackStart: string
  /** AAC only, 3 s. */
  audioOnly: string
  /** A text file named .mp4. */
  textAsMp4: string
  /** A faststart MP4 cut at 41 % of its bytes. */
  truncated: string
  cleanup(): Promise<void>
}

export async function makeFixtures(which: Partial<Record<Exclude<keyof Fixtures, 'dir' | 'cleanup'>, boolean>> = {}): Promise<Fixtures> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'media-fixtures-'))
  const file = (name: string) => path.join(dir, name)
  const all = Object.keys(which).length === 0
  const want = (key: keyof typeof which) => all || which[key] === true
  const f: Fixtures = {
    dir,
    landscape1080: file('landscape-1080.mp4'),
    portraitRotated: file('portrait-rotated.mp4'),
    oddSize: file('odd-639x359.mp4'),
    threeSecondsBlackStart: file('three-seconds.mp4'),
    audioOnly: file('audio-only.m4a'),
    textAsMp4: file('notes.mp4'),
    truncated: file('truncated.mp4'),
    cleanup: () => rm(dir, {recursive: true, force: true}),
  }
  const jobs: Promise<void>[] = []
  if (want('landscape1080'))
    jobs.push(ffmpeg([...lavfi('testsrc2=size=1920x1080:rate=25:duration=2'), ...lavfi('sine=frequency=440:duration=2'), ...X264, ...AAC, '-shortest', f.landscape1080]))
  if (want('portraitRotated'))
    jobs.push(
      (async () => {
        // ffmpeg 5 keeps the rotate tag as a display matrix only when stream-copying.
        const upright = file('portrait-upright.mp4')
        await ffmpeg([...lavfi('testsrc2=size=640x360:rate=25:duration=2'), ...lavfi('sine=frequency=660:duration=2'), ...X264, ...AAC, '-shortest', upright])
        await ffmpeg(['-i', upright, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', f.portraitRotated])
      })()
    )
  if (want('oddSize')) jobs.push(ffmpeg([...lavfi('testsrc2=size=639x359:rate=25:duration=2'), ...X264, '-pix_fmt', 'yuv444p', f.oddSize]))
  if (want('threeSecondsBlackStart'))
    jobs.push(
      ffmpeg([
        ...lavfi('color=c=black:size=640x360:rate=25:duration=1'),
        ...lavfi('testsrc2=size=640x360:rate=25:duration=2'),
        ...lavfi('sine=frequency=330:duration=3'),
        '-filter_complex', '[0:v][1:v]concat=n=2:v=1:a=0[v]', '-map', '[v]', '-map', '2:a', ...X264, ...AAC, f.threeSecondsBlackStart,
      ])
    )
  if (want('audioOnly')) jobs.push(ffmpeg([...lavfi('sine=frequency=440:duration=3'), ...AAC, f.audioOnly]))
  if (want('textAsMp4')) jobs.push(writeFile(f.textAsMp4, 'Meeting notes\nThis is not a video, only a text file with the wrong name.\n'.repeat(20)))
  if (want('truncated'))
    jobs.push(
      (async () => {
        await ffmpeg([...lavfi('testsrc2=size=640x360:rate=25:duration=3'), ...lavfi('sine=duration=3'), ...X264, ...AAC, '-shortest', '-movflags', '+faststart', f.truncated])
        await truncate(f.truncated, Math.floor((await stat(f.truncated)).size * 0.415))
      })()
    )
  await Promise.all(jobs)
  return f
}

export interface ProbedStream {
  codec_type: string
  codec_name: string
  width?: number
  height?: number
  side_data_list?: {rotation?: number}[]
  tags?: Record<string, string>
}

export async function ffprobe(file: string): Promise<{format: {duration: string; format_name: string}; streams: ProbedStream[]}> {
  const {stdout} = await exec(tools.ffprobePath, ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file])
  return JSON.parse(stdout)
}

/** Mean luma (0..255) of an image, through ffmpeg's signalstats. */
export async function meanLuma(image: string): Promise<number> {
  const {stderr} = await exec(tools.ffmpegPath, ['-hide_banner', '-i', image, '-vf', 'signalstats,metadata=print:key=lavfi.signalstats.YAVG', '-f', 'null', '-'])
  const match = /lavfi\.signalstats\.YAVG=([\d.]+)/.exec(stderr)
  if (!match) throw new Error(`no luma measured for ${image}`)
  return Number(match[1])
}

export {readFile}
