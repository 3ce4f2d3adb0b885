/**
 * The inputs phones, browsers and cameras make that issue 17 is about, each generated on first
 * use with ffmpeg's lavfi sources (320x180, a few seconds, ultrafast) and kept for the run.
 */
import {execFile} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {tools} from './media-fixtures.js'

const exec = promisify(execFile)
const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast']
const AAC = ['-c:a', 'aac', '-b:a', '64k']
const lavfi = (graph: string) => ['-f', 'lavfi', '-i', graph]
const testsrc = (seconds: number, size = '320x180') => lavfi(`testsrc2=size=${size}:rate=25:duration=${seconds}`)
const tone = (seconds: number) => lavfi(`sine=frequency=440:duration=${seconds}`)

export async function ffmpeg(args: string[]): Promise<void> {
  await exec(tools.ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', ...args], {maxBuffer: 16 << 20})
}

/** How each input is made: `out` is the file to write, `tmp(name)` a scratch file beside it. */
const RECIPES = {
  /** 3 s of black picture over a tone. */
  blackWithAudio: async (out: string) => ffmpeg([...lavfi('color=c=black:size=320x180:rate=25:duration=3'), ...tone(3), ...X264, ...AAC, '-shortest', out]),
  /** MPEG-TS (one keyframe, timestamps from 1.4 s): input seeking lands past the last frame. */
  mpegTs: async (out: string) => ffmpeg([...testsrc(3), ...tone(3), ...X264, ...AAC, '-shortest', '-f', 'mpegts', out]),
  /** One frame, nothing else. */
  singleFrame: async (out: string) => ffmpeg([...testsrc(1), '-frames:v', '1', ...X264, out]),
  /** One frame of picture beside 3 s of sound. */
  singleFramePlusAudio: async (out: string, tmp: (n: string) => string) => {
    await ffmpeg([...testsrc(1), '-frames:v', '1', ...X264, tmp('frame.mp4')])
    await ffmpeg(['-i', tmp('frame.mp4'), ...tone(3), '-c:v', 'copy', ...AAC, out])
  },
  /** WebM as Chrome's MediaRecorder writes it: VP8 + Opus, live (no Duration element, no Cues). */
  browserWebm: async (out: string) =>
    ffmpeg([...testsrc(3), ...tone(3), '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k', '-c:a', 'libopus', '-shortest', '-f', 'webm', '-live', '1', out]),
  /** HEVC Main10 HLG, as an iPhone 12+ records by default (the samples are SDR ones, the tags say HLG). */
  hdrHlg: async (out: string) =>
    ffmpeg([
      ...testsrc(2), ...tone(2), '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', '-pix_fmt', 'yuv420p10le',
      '-color_primaries', 'bt2020', '-color_trc', 'arib-std-b67', '-colorspace', 'bt2020nc', '-tag:v', 'hvc1', ...AAC, '-shortest', out,
    ]),
  /** Interlaced H.264 as a camcorder writes it: 50 fields a second woven top field first, flagged tt. */
  interlaced: async (out: string) =>
    ffmpeg([
      ...lavfi('testsrc2=size=320x180:rate=50:duration=2'), ...tone(2), '-vf', 'interlace=scan=tff', ...X264, '-flags', '+ilme+ildct', '-x264opts', 'tff=1', ...AAC, '-shortest', out,
    ]),
  /** 3 s of AAC with a 300x300 JPEG cover (an attached picture), as podcasts and music ship. */
  audioWithCover: async (out: string, tmp: (n: string) => string) => {
    await ffmpeg([...lavfi('testsrc2=size=300x300'), '-frames:v', '1', tmp('cover.jpg')])
    await ffmpeg([...tone(3), '-i', tmp('cover.jpg'), '-map', '0:a', '-map', '1:v', ...AAC, '-c:v', 'mjpeg', '-disposition:v:0', 'attached_pic', out])
  },
  /** 3 s of MP3 with a 240x240 PNG cover in its ID3 tag (APIC), as music downloads ship. */
  mp3WithCover: async (out: string, tmp: (n: string) => string) => {
    await ffmpeg([...lavfi('testsrc2=size=240x240'), '-frames:v', '1', tmp('cover.png')])
    await ffmpeg([...tone(3), '-i', tmp('cover.png'), '-map', '0:a', '-map', '1:v', '-c:a', 'libmp3lame', '-b:a', '64k', '-c:v', 'png', '-id3v2_version', '3', '-disposition:v:0', 'attached_pic', out])
  },
  /** 3 s of FLAC with a 400x300 JPEG cover (a METADATA_BLOCK_PICTURE). */
  flacWithCover: async (out: string, tmp: (n: string) => string) => {
    await ffmpeg([...lavfi('testsrc2=size=400x300'), '-frames:v', '1', tmp('cover.jpg')])
    await ffmpeg([...tone(3), '-i', tmp('cover.jpg'), '-map', '0:a', '-map', '1:v', '-c:a', 'flac', '-c:v', 'copy', '-disposition:v:0', 'attached_pic', out])
  },
  /** 3 s of AAC, nothing else. */
  audioOnly: async (out: string) => ffmpeg([...tone(3), ...AAC, out]),
  /** PAL DV-style anamorphic: 720x576 stored, pixels 16:15 wide, shown 768x576 (4:3). */
  anamorphic: async (out: string) => ffmpeg([...testsrc(2, '720x576'), '-vf', 'setsar=16/15', ...X264, out]),
  /** A JPEG photo. */
  photo: async (out: string) => ffmpeg([...testsrc(1), '-frames:v', '1', out]),
} satisfies Record<string, (out: string, tmp: (name: string) => string) => Promise<void>>

export type CorpusInput = keyof typeof RECIPES
const EXTENSIONS: Partial<Record<CorpusInput, string>> = {mpegTs: '.ts', browserWebm: '.webm', audioWithCover: '.m4a', mp3WithCover: '.mp3', flacWithCover: '.flac', audioOnly: '.m4a', photo: '.jpg'}

export interface Corpus {
  /** The input's path, generated on first use. */
  get(input: CorpusInput): Promise<string>
  cleanup(): Promise<void>
}

export async function openCorpus(): Promise<Corpus> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'media-corpus-'))
  const made = new Map<CorpusInput, Promise<string>>()
  return {
    get(input) {
      let file = made.get(input)
      if (!file) {
        const out = path.join(dir, `${input}${EXTENSIONS[input] ?? '.mp4'}`)
        file = RECIPES[input](out, (name) => path.join(dir, `${input}-${name}`)).then(() => out)
        made.set(input, file)
      }
      return file
    },
    cleanup: () => rm(dir, {recursive: true, force: true}),
  }
}
