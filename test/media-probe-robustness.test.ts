/**
 * Issue 17: probing that cannot be trusted. ffprobe runs at MEDIA_NICE within
 * MEDIA_PROBE_TIMEOUT; where it crashes (the npm-shipped ffprobe on every MPEG-TS), the
 * description comes from `ffmpeg -i` instead, and matches what ffprobe says of the same file.
 */
import assert from 'node:assert/strict'
import {chmod, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {createRequire} from 'node:module'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {FfmpegTimedOut, UnplayableMedia} from '../src/media/errors.js'
import {lastPacketEnd, probeMedia} from '../src/media/probe.js'
import type {MediaTools} from '../src/media/media-tools.js'
import {openCorpus, type Corpus, type CorpusInput} from './support/media-corpus.js'
import {tools} from './support/media-fixtures.js'

let corpus: Corpus
let dir: string
before(async () => {
  corpus = await openCorpus()
  dir = await mkdtemp(path.join(os.tmpdir(), 'probe-robust-'))
})
after(async () => {
  await corpus?.cleanup()
  await rm(dir, {recursive: true, force: true})
})

/** An executable shell script standing in for ffprobe. */
async function fakeFfprobe(name: string, body: string): Promise<string> {
  const file = path.join(dir, name)
  await writeFile(file, `#!/bin/sh\n${body}\n`)
  await chmod(file, 0o755)
  return file
}

const crashing = () => fakeFfprobe('segfaulting-ffprobe', 'kill -SEGV $$')

describe('probeMedia where ffprobe crashes', () => {
  const inputs: CorpusInput[] = ['mpegTs', 'interlaced', 'hdrHlg', 'audioWithCover', 'anamorphic']
  for (const input of inputs) {
    it(`${input}: ffmpeg -i gives what ffprobe gives (format, duration, streams, size, rotation, scan, colour)`, async () => {
      const file = await corpus.get(input)
      const expected = await probeMedia(tools, file)
      const fallback = await probeMedia({...tools, ffprobePath: await crashing()}, file)
      assert.equal(fallback.formatName, expected.formatName)
      assert.ok(Math.abs(fallback.duration - expected.duration) <= 0.02, `duration ${fallback.duration} vs ${expected.duration}`)
      assert.deepEqual(fallback.streams, expected.streams)
      for (const key of ['codec', 'width', 'height', 'rotation', 'displayWidth', 'displayHeight', 'frameRate', 'interlaced', 'color'] as const) {
        assert.deepEqual(fallback.video?.[key], expected.video?.[key], `video ${key}`)
      }
      assert.deepEqual(fallback.audio && {codec: fallback.audio.codec, channels: fallback.audio.channels, sampleRate: fallback.audio.sampleRate}, expected.audio && {codec: expected.audio.codec, channels: expected.audio.channels, sampleRate: expected.audio.sampleRate})
      assert.deepEqual(fallback.cover, expected.cover)
    })
  }

  it('the npm-shipped ffprobe, which dies with SIGSEGV on MPEG-TS, still gets the TS probed', async () => {
    const npmProbe = (createRequire(import.meta.url)('@ffprobe-installer/ffprobe') as {path: string}).path
    const probe = await probeMedia({...tools, ffprobePath: npmProbe}, await corpus.get('mpegTs'))
    assert.equal(probe.formatName, 'mpegts')
    assert.ok(Math.abs(probe.duration - 3) < 0.2, `duration ${probe.duration}`)
    assert.equal(probe.video?.codec, 'h264')
    assert.equal(probe.audio?.codec, 'aac')
  })

  it('a wrapper that reports the crash as exit 139 is a crash too, not "not a video"', async () => {
    const probe = await probeMedia({...tools, ffprobePath: await fakeFfprobe('exit-139', 'exit 139')}, await corpus.get('mpegTs'))
    assert.equal(probe.video?.width, 320)
  })

  it('a file ffmpeg cannot read either is unplayable (permanent, no retries), naming the crash', async () => {
    // No extension, as uploads are stored (with .txt ffmpeg's tty demuxer reads it as a video of its characters).
    const text = path.join(dir, 'notes')
    await writeFile(text, 'just some words\n'.repeat(100))
    await assert.rejects(probeMedia({...tools, ffprobePath: await crashing()}, text), (error: unknown) => {
      assert.ok(error instanceof UnplayableMedia && error.permanent, String(error))
      assert.match(error.reason, /ffprobe .* crashed on it, SIGSEGV/)
      return true
    })
  })
})

describe('probeMedia limits', () => {
  it('an ffprobe that hangs is killed after MEDIA_PROBE_TIMEOUT (retryable), not waited for', async () => {
    const hanging: MediaTools = {...tools, ffprobePath: await fakeFfprobe('hanging', 'exec sleep 30'), probeTimeoutMs: 500}
    const started = Date.now()
    await assert.rejects(probeMedia(hanging, await corpus.get('mpegTs')), FfmpegTimedOut)
    assert.ok(Date.now() - started < 5000, `gave up after ${Date.now() - started} ms`)
  })

  it('the packet pass (WebM without a duration) is killed after MEDIA_PROBE_TIMEOUT too', async () => {
    const hanging: MediaTools = {...tools, ffprobePath: await fakeFfprobe('hanging-packets', 'exec sleep 30'), probeTimeoutMs: 500}
    const started = Date.now()
    await assert.rejects(lastPacketEnd(hanging, await corpus.get('browserWebm')), FfmpegTimedOut)
    assert.ok(Date.now() - started < 5000, `gave up after ${Date.now() - started} ms`)
  })

  it('ffprobe runs at MEDIA_NICE', async () => {
    const seen = path.join(dir, 'niceness')
    // Field 19 of /proc/self/stat, read once the priority was lowered (right after the start).
    const wrapper = await fakeFfprobe('nice-reporting', `sleep 0.3; cut -d' ' -f19 /proc/$$/stat > ${seen}; exec ${tools.ffprobePath} "$@"`)
    const probe = await probeMedia({...tools, ffprobePath: wrapper, nice: 12}, await corpus.get('mpegTs'))
    assert.equal(probe.formatName, 'mpegts')
    assert.equal(Number((await readFile(seen, 'utf8')).trim()), Math.max(12, os.getPriority()))
  })
})
