/**
 * The media module against real ffmpeg, on media generated with lavfi: probe verdicts,
 * transcodes checked with ffprobe, snapshots, the timeout kill and the start-up tool check.
 */
import assert from 'node:assert/strict'
import {chmod, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import ffmpeg from 'fluent-ffmpeg'
import {loadConfig} from '../src/config/index.js'
import {FfmpegFailed, FfmpegTimedOut, MediaToolsMissing, UnplayableMedia} from '../src/media/errors.js'
import {runFfmpeg} from '../src/media/ffmpeg-run.js'
import {checkMediaTools} from '../src/media/media-tools.js'
import {probeMedia, type MediaProbe, type VideoStreamInfo} from '../src/media/probe.js'
import {planRenditions} from '../src/media/rendition-ladder.js'
import {takeSnapshots} from '../src/media/snapshots.js'
import {transcodeMedia, type PublishedRendition} from '../src/media/transcode.js'
import {ffprobe, makeFixtures, meanLuma, tools, type Fixtures} from './support/media-fixtures.js'

const ladder = loadConfig({}, {dataDir: '/tmp/unused'}).renditions
let f: Fixtures
let out: string

before(async () => {
  f = await makeFixtures()
  out = await mkdtemp(path.join(os.tmpdir(), 'media-out-'))
})
after(async () => {
  await f?.cleanup()
  await rm(out, {recursive: true, force: true})
})

async function transcode(source: string, name: string, extra: {timeoutMs?: number; preset?: string; published?: PublishedRendition[]} = {}) {
  const probe = await probeMedia(tools, source)
  const plan = planRenditions(probe, ladder)
  const outDir = path.join(out, name)
  const progress: number[] = []
  const published = extra.published ?? []
  await transcodeMedia({
    tools, source, probe, plan, outDir, preset: extra.preset ?? 'ultrafast', timeoutMs: extra.timeoutMs ?? 60_000,
    onProgress: (p) => progress.push(p),
    onRendition: async (r) => void published.push(r),
  })
  return {probe, plan, outDir, progress, published}
}

const near = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) <= 0.1, `${what}: ${actual} s, expected ${expected} s within 0.1 s`)

/** ffmpeg processes whose command line mentions `marker` (our test's temp directory). */
async function ffmpegProcessesMentioning(marker: string): Promise<number[]> {
  const found: number[] = []
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes('ffmpeg') && cmdline.includes(marker)) found.push(Number(pid))
  }
  return found
}

describe('probeMedia', () => {
  it('reads duration, codecs, dimensions and bitrate of a 1080p video', async () => {
    const p = await probeMedia(tools, f.landscape1080)
    near(p.duration, 2, 'duration')
    assert.deepEqual([p.video?.codec, p.video?.width, p.video?.height, p.audio?.codec], ['h264', 1920, 1080, 'aac'])
    assert.ok(p.bitrate && p.bitrate > 0)
    assert.deepEqual(p.streams.map((s) => s.type).sort(), ['audio', 'video'])
  })

  it('reads rotation from the display matrix and reports the displayed size', async () => {
    const p = await probeMedia(tools, f.portraitRotated)
    assert.ok(p.video?.rotation === 90 || p.video?.rotation === 270, `rotation ${p.video?.rotation}`)
    assert.deepEqual([p.video?.width, p.video?.height, p.video?.displayWidth, p.video?.displayHeight], [640, 360, 360, 640])
  })

  it('accepts audio-only files, with no video', async () => {
    const p = await probeMedia(tools, f.audioOnly)
    assert.equal(p.video, null)
    assert.equal(p.audio?.codec, 'aac')
  })

  it('says a text file named .mp4 is not a video, as a permanent failure', async () => {
    await assert.rejects(probeMedia(tools, f.textAsMp4), (e: unknown) => e instanceof UnplayableMedia && e.permanent && e.reason === 'file is not a video (it contains text)')
  })

  it('says how much of a truncated MP4 arrived', async () => {
    await assert.rejects(probeMedia(tools, f.truncated), (e: unknown) => e instanceof UnplayableMedia && e.reason === 'file is truncated at 41%')
  })

  it('says "no video stream found" for a file with neither picture nor sound', async () => {
    const subs = path.join(f.dir, 'subs.srt')
    await writeFile(subs, '1\n00:00:00,000 --> 00:00:01,000\nhello\n')
    const mkv = path.join(f.dir, 'subtitles-only.mkv')
    await new Promise<void>((resolve, reject) => ffmpeg(subs).setFfmpegPath(tools.ffmpegPath).output(mkv).on('end', () => resolve()).on('error', reject).run())
    await assert.rejects(probeMedia(tools, mkv), (e: unknown) => e instanceof UnplayableMedia && e.reason === 'no video stream found')
  })

  it('says an empty file is empty', async () => {
    const empty = path.join(f.dir, 'empty.mp4')
    await writeFile(empty, '')
    await assert.rejects(probeMedia(tools, empty), (e: unknown) => e instanceof UnplayableMedia && e.reason === 'file is empty')
  })
})

describe('transcodeMedia', () => {
  it('turns a 1080p video into a faststart H.264/AAC MP4 and a four-rung HLS ladder, lowest rendition first', async () => {
    const {outDir, progress, published} = await transcode(f.landscape1080, 'landscape')
    // The MP4 is published as soon as it is whole, before the top HLS rendition is cut from it.
    assert.deepEqual(published.map((r) => r.name), ['360p', '480p', '720p', 'download', '1080p'])
    assert.deepEqual(published.find((r) => r.name === 'download')?.files, ['video.mp4'])
    const mp4 = await ffprobe(path.join(outDir, 'video.mp4'))
    assert.deepEqual(mp4.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort(), ['audio:aac', 'video:h264'])
    assert.deepEqual(mp4.streams.filter((s) => s.codec_type === 'video').map((s) => [s.width, s.height]), [[1920, 1080]])
    near(Number(mp4.format.duration), 2, 'MP4 duration')
    // faststart: the moov box comes before mdat.
    const head = (await readFile(path.join(outDir, 'video.mp4'))).subarray(0, 64).toString('latin1')
    assert.ok(head.indexOf('moov') > 0 && (head.indexOf('mdat') === -1 || head.indexOf('moov') < head.indexOf('mdat')), 'moov first')
    for (const [name, w, h] of [['360p', 640, 360], ['480p', 854, 480], ['720p', 1280, 720], ['1080p', 1920, 1080]] as const) {
      const variant = await ffprobe(path.join(outDir, 'hls', name, 'index.m3u8'))
      const v = variant.streams.find((s) => s.codec_type === 'video')!
      assert.deepEqual([v.codec_name, v.width, v.height], ['h264', w, h], name)
      assert.ok(variant.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac'), `${name} has AAC`)
      near(Number(variant.format.duration), 2, `${name} duration`)
    }
    const master = await readFile(path.join(outDir, 'hls', 'master.m3u8'), 'utf8')
    assert.equal(master.match(/#EXT-X-STREAM-INF/g)?.length, 4)
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b), 'progress never goes back')
    assert.ok(progress.every((p) => p >= 0 && p <= 100))
    assert.equal(progress.at(-1), 100)
    assert.deepEqual((await readdir(outDir)).filter((n) => n.startsWith('.')), [], 'no temp files left')
  })

  it('keeps rotation: a rotated 640x360 video comes out 360x640 with no rotation left to apply', async () => {
    const {outDir} = await transcode(f.portraitRotated, 'portrait')
    const mp4 = await ffprobe(path.join(outDir, 'video.mp4'))
    const v = mp4.streams.find((s) => s.codec_type === 'video')!
    assert.deepEqual([v.width, v.height], [360, 640])
    assert.ok(!v.side_data_list?.some((d) => d.rotation), 'no display matrix rotation left')
    near(Number(mp4.format.duration), 2, 'duration')
  })

  it('makes odd dimensions even and handles a video without sound', async () => {
    const {outDir, published} = await transcode(f.oddSize, 'odd')
    assert.deepEqual(published.map((r) => r.name), ['download', '358p'])
    const mp4 = await ffprobe(path.join(outDir, 'video.mp4'))
    assert.deepEqual(mp4.streams.map((s) => [s.codec_name, s.width, s.height]), [['h264', 638, 358]])
  })

  it('keeps a 3-second clip at 3 seconds in the MP4 and in HLS', async () => {
    const {outDir} = await transcode(f.threeSecondsBlackStart, 'three')
    near(Number((await ffprobe(path.join(outDir, 'video.mp4'))).format.duration), 3, 'MP4')
    near(Number((await ffprobe(path.join(outDir, 'hls', '360p', 'index.m3u8'))).format.duration), 3, 'HLS')
  })

  it('gives audio-only input a generated still as its picture: one 360p rendition and an MP4 as long as the sound', async () => {
    const {outDir, published} = await transcode(f.audioOnly, 'audio')
    assert.deepEqual(published.map((r) => r.name), ['download', '360p'])
    const mp4 = await ffprobe(path.join(outDir, 'video.mp4'))
    assert.deepEqual(mp4.streams.map((s) => `${s.codec_type}:${s.codec_name}:${s.width ?? ''}x${s.height ?? ''}`).sort(), ['audio:aac:x', 'video:h264:640x360'])
    near(Number(mp4.format.duration), 3, 'MP4')
    assert.match(await readFile(path.join(outDir, 'hls', 'master.m3u8'), 'utf8'), /RESOLUTION=640x360,CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"\n360p\/index\.m3u8/)
  })

  it('kills the whole ffmpeg process tree past the timeout, leaves nothing half-written visible and says so', async () => {
    const name = `timeout-${process.pid}`
    const started = Date.now()
    // Small renditions may finish inside the limit; the 1080p MP4 does not.
    const published: PublishedRendition[] = []
    await assert.rejects(transcode(f.landscape1080, name, {timeoutMs: 400, preset: 'veryfast', published}), (e: unknown) => {
      assert.ok(e instanceof FfmpegTimedOut, String(e))
      assert.match(e.message, /longer than its 0 s limit|longer than its 1 s limit|limit and was killed/)
      assert.match(e.commandLine, /libx264/)
      return true
    })
    assert.ok(Date.now() - started < 10_000)
    assert.deepEqual(await ffmpegProcessesMentioning(name), [], 'no ffmpeg left running')
    const hls = path.join(out, name, 'hls')
    const finished = published.map((r) => r.name).filter((n) => n !== 'download')
    const visible = (await readdir(hls)).filter((n) => !n.startsWith('.'))
    assert.deepEqual(visible.sort(), finished.length > 0 ? [...finished, 'master.m3u8'].sort() : [], 'only renditions that finished are under served names')
    for (const rendition of finished) assert.match(await readFile(path.join(hls, rendition, 'index.m3u8'), 'utf8'), /#EXT-X-ENDLIST\n$/, `${rendition} is whole`)
    assert.equal((await readdir(path.join(out, name))).includes('video.mp4'), published.some((r) => r.name === 'download'), 'the MP4 is visible only if it finished')
    assert.deepEqual((await readdir(hls)).filter((n) => n.startsWith('.')), [], 'temp directory removed')
    assert.deepEqual((await readdir(path.join(out, name))).filter((n) => n.startsWith('.')), [], 'temp MP4 removed')
  })

  it('puts the ffmpeg command line and its stderr in the error when ffmpeg fails', async () => {
    const command = ffmpeg({source: f.landscape1080}).outputOptions(['-c:v', 'libx264', '-preset', 'no-such-preset', '-f', 'mp4']).output(path.join(out, 'bad.mp4'))
    await assert.rejects(runFfmpeg(tools, command, {outputDuration: 2, timeoutMs: 30_000}), (e: unknown) => {
      assert.ok(e instanceof FfmpegFailed && !(e instanceof FfmpegTimedOut))
      assert.match(e.commandLine, /-preset no-such-preset/)
      assert.match(e.stderr, /preset/i)
      assert.match(e.message, /command: .*ffmpeg/)
      return true
    })
  })
})

describe('takeSnapshots', () => {
  const snap = async (source: string, name: string) => {
    const probe = (await probeMedia(tools, source)) as MediaProbe & {video: VideoStreamInfo}
    const outDir = path.join(out, `snap-${name}`)
    return {outDir, taken: await takeSnapshots({tools, source, probe, outDir, thumbnailCount: 5, timeoutMs: 60_000})}
  }

  it('takes a poster that is not the black opening, five thumbnails and a storyboard with WebVTT cues', async () => {
    const {outDir, taken} = await snap(f.threeSecondsBlackStart, 'three')
    assert.ok((await meanLuma(path.join(outDir, 'poster.jpg'))) > 40, 'poster is not black')
    assert.equal(taken.thumbnails.length, 5)
    const thumb = await ffprobe(path.join(outDir, taken.thumbnails[4]!))
    assert.deepEqual([thumb.streams[0]!.width, thumb.streams[0]!.height], [320, 180])
    const sprite = await ffprobe(path.join(outDir, 'storyboard', 'sprite.jpg'))
    assert.deepEqual([sprite.streams[0]!.width, sprite.streams[0]!.height], [480, 90], '3 tiles of 160x90')
    const vtt = await readFile(path.join(outDir, 'storyboard', 'storyboard.vtt'), 'utf8')
    assert.match(vtt, /^WEBVTT/)
    assert.equal(vtt.match(/sprite\.jpg#xywh=\d+,\d+,160,90/g)?.length, 3)
    assert.match(vtt, /00:00:02\.000 --> 00:00:03\.000\nsprite\.jpg#xywh=320,0,160,90/)
  })

  it('keeps a rotated video upright in its poster', async () => {
    const {outDir} = await snap(f.portraitRotated, 'portrait')
    const poster = await ffprobe(path.join(outDir, 'poster.jpg'))
    assert.deepEqual([poster.streams[0]!.width, poster.streams[0]!.height], [360, 640])
  })
})

describe('start-up check of media tools', () => {
  it('passes with the installed ffmpeg and ffprobe', async () => {
    const found = await checkMediaTools(tools)
    assert.match(found.ffmpegVersion, /ffmpeg version/)
  })

  it('names the missing encoder or binary', async () => {
    const fake = path.join(out, 'fake-ffmpeg')
    // An ffmpeg that runs but was built without libx264 (its encoder list only has aac).
    await writeFile(fake, `#!/bin/sh\ncase "$*" in *-encoders*) echo ' A..... aac   AAC';; *-filters*) ${tools.ffmpegPath} -hide_banner -filters;; *) echo 'ffmpeg version fake';; esac\n`)
    await chmod(fake, 0o755)
    await assert.rejects(checkMediaTools({ffmpegPath: fake, ffprobePath: tools.ffprobePath}), (e: unknown) => {
      assert.ok(e instanceof MediaToolsMissing)
      assert.match(e.message, /ffmpeg encoder libx264 \(ffmpeg at .*fake-ffmpeg was built without it\)/)
      assert.doesNotMatch(e.message, /encoder aac/)
      return true
    })
    await assert.rejects(checkMediaTools({ffmpegPath: tools.ffmpegPath, ffprobePath: '/nonexistent/ffprobe'}), /ffprobe at \/nonexistent\/ffprobe does not run/)
  })
})

