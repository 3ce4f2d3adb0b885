/** Pure media logic: the rendition ladder, thumbnail times, progress, playlists and storyboard cues. */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {loadConfig} from '../src/config/index.js'
import {progressPercent, statsLineSeconds, timemarkSeconds} from '../src/media/ffmpeg-run.js'
import {progressWriter} from '../src/media/media-jobs.js'
import type {MediaProbe, VideoStreamInfo} from '../src/media/probe.js'
import {even, planRenditions, storyboardInterval, thumbnailTimes} from '../src/media/rendition-ladder.js'
import {storyboardVtt} from '../src/media/snapshots.js'
import {masterPlaylist} from '../src/media/transcode.js'

const ladder = loadConfig({}, {dataDir: '/tmp/unused'}).renditions

function video(width: number, height: number, rotation = 0): Pick<MediaProbe, 'video' | 'audio'> {
  const sideways = rotation === 90 || rotation === 270
  const v: VideoStreamInfo = {codec: 'h264', width, height, rotation, displayWidth: sideways ? height : width, displayHeight: sideways ? width : height, frameRate: 25, bitrate: null}
  return {video: v, audio: {codec: 'aac', channels: 2, sampleRate: 48000, bitrate: null}}
}

const sizes = (plan: ReturnType<typeof planRenditions>) => plan.renditions.map((r) => `${r.name}:${r.width}x${r.height}`)

describe('rendition ladder', () => {
  it('gives a 1080p source the default 1080p/720p/480p/360p ladder, highest first', () => {
    assert.deepEqual(sizes(planRenditions(video(1920, 1080), ladder)), ['1080p:1920x1080', '720p:1280x720', '480p:854x480', '360p:640x360'])
  })

  it('never upscales: a 720p source stops at 720p', () => {
    assert.deepEqual(sizes(planRenditions(video(1280, 720), ladder)), ['720p:1280x720', '480p:854x480', '360p:640x360'])
  })

  it('keeps a portrait picture portrait, the rung naming its short side', () => {
    assert.deepEqual(sizes(planRenditions(video(1080, 1920), ladder)), ['1080p:1080x1920', '720p:720x1280', '480p:480x854', '360p:360x640'])
  })

  it('plans from the displayed picture: a landscape-stored video rotated 90 degrees comes out portrait', () => {
    assert.deepEqual(sizes(planRenditions(video(1280, 720, 90), ladder)), ['720p:720x1280', '480p:480x854', '360p:360x640'])
  })

  it('makes odd sizes even without going above the source', () => {
    assert.deepEqual(sizes(planRenditions(video(639, 359), ladder)), ['358p:638x358'])
    assert.deepEqual(sizes(planRenditions(video(1921, 1081), ladder)), ['1080p:1920x1080', '720p:1280x720', '480p:852x480', '360p:640x360'])
    assert.equal(even(7), 6)
    assert.equal(even(1), 2)
  })

  it('keeps the aspect ratio of ultra-wide and square sources', () => {
    assert.deepEqual(sizes(planRenditions(video(2560, 1080), ladder)), ['1080p:2560x1080', '720p:1706x720', '480p:1138x480', '360p:854x360'])
    assert.deepEqual(sizes(planRenditions(video(500, 500), ladder)), ['480p:480x480', '360p:360x360'])
  })

  it('gives a source smaller than every rung one rendition at its own size', () => {
    assert.deepEqual(sizes(planRenditions(video(320, 240), ladder)), ['240p:320x240'])
  })

  it('gives sound without cover art one rendition of a generated still, the sound at the top rung\'s rate', () => {
    const plan = planRenditions({video: null, audio: {codec: 'aac', channels: 2, sampleRate: 44100, bitrate: null}, cover: null}, ladder)
    assert.deepEqual(sizes(plan), ['360p:640x360'])
    assert.deepEqual([plan.still, plan.withAudio, plan.renditions[0]!.audioBitrate], [{generated: true}, true, '128k'])
  })

  it('gives sound with cover art one rendition of the cover, never upscaled', () => {
    const plan = planRenditions({video: null, audio: {codec: 'mp3', channels: 2, sampleRate: 44100, bitrate: null}, cover: {index: 1, width: 500, height: 500}}, ladder)
    assert.deepEqual(sizes(plan), ['360p:360x360'])
    assert.deepEqual(plan.still, {streamIndex: 1})
  })

  it('uses the configured ladder, whatever its order', () => {
    const custom = [
      {name: 'low', height: 240, videoBitrate: '400k', audioBitrate: '64k'},
      {name: 'high', height: 720, videoBitrate: '3000k', audioBitrate: '128k'},
    ]
    assert.deepEqual(sizes(planRenditions(video(1920, 1080), custom)), ['high:1280x720', 'low:426x240'])
  })
})

describe('thumbnail times', () => {
  it('spreads thumbnails evenly, each in the middle of its slice', () => {
    assert.deepEqual(thumbnailTimes(10, 5, 25), [1, 3, 5, 7, 9])
  })

  it('takes fewer thumbnails from a clip with fewer frames, and none from nothing', () => {
    assert.deepEqual(thumbnailTimes(0.08, 5, 25), [0.02, 0.06])
    assert.deepEqual(thumbnailTimes(0, 5, 25), [])
    assert.deepEqual(thumbnailTimes(10, 0, 25), [])
  })

  it('gives the storyboard a tile per second for short clips and spreads long ones over at most 100 tiles', () => {
    assert.equal(storyboardInterval(3, 100), 1)
    assert.equal(storyboardInterval(3600, 100), 36)
  })
})

describe('progress', () => {
  it('reads ffmpeg timemarks and ignores the negative ones printed before the first frame', () => {
    assert.equal(timemarkSeconds('00:01:02.50'), 62.5)
    assert.ok(Number.isNaN(timemarkSeconds('-577014:32:22.77')))
    assert.ok(Number.isNaN(timemarkSeconds('N/A')))
  })

  it('computes percent against the expected output duration, clamped to 0..100', () => {
    assert.equal(progressPercent(1.5, 3), 50)
    assert.equal(progressPercent(4, 3), 100)
    assert.equal(progressPercent(-1, 3), 0)
    assert.equal(progressPercent(Number.NaN, 3), 0)
    assert.equal(progressPercent(1, 0), 0)
  })

  it("reads the written time from ffmpeg's stats lines and nothing else", () => {
    assert.equal(statsLineSeconds('frame=  50 fps= 25 q=28.0 size=     256kB time=00:00:02.00 bitrate=1048.6kbits/s speed=1.0x'), 2)
    assert.equal(statsLineSeconds('size=     128kB time=00:00:01.50 bitrate= 699.1kbits/s speed=3x'), 1.5)
    assert.ok(Number.isNaN(statsLineSeconds('frame=    0 fps=0.0 q=0.0 size=       0kB time=-577014:32:22.77 bitrate=N/A')))
    assert.ok(Number.isNaN(statsLineSeconds('      creation_time   : 2024-01-01T00:00:00.000000Z')))
    assert.ok(Number.isNaN(statsLineSeconds("[hls @ 0x5581] Opening 'seg_0001.ts' for writing")))
  })

  it('writes job progress one write at a time, in order, throttled, with 100 at once', async () => {
    // A clock the test moves: what is written depends on the order of reports, never on how fast this machine runs.
    let clock = 0
    const writes: number[] = []
    let inFlight = 0
    let overlapped = false
    const writer = progressWriter(
      {
        log: {debug() {}} as never,
        progress: async (p) => {
          overlapped ||= inFlight > 0
          inFlight++
          await new Promise((resolve) => setImmediate(resolve))
          writes.push(p)
          inFlight--
        },
      },
      50,
      () => clock
    )
    for (let p = 0; p <= 40; p++) writer.report(p)
    await writer.settled()
    assert.deepEqual(writes, [0], 'the rest of the burst waits for the interval')
    clock = 49
    writer.report(41)
    await writer.settled()
    assert.deepEqual(writes, [0], 'still inside the interval')
    clock = 50
    writer.report(42)
    writer.report(30)
    writer.report(100)
    await writer.settled()
    assert.deepEqual(writes, [0, 42, 100], 'never back, and 100 without waiting for the interval')
    assert.equal(overlapped, false, 'one write in flight at a time')
    writer.report(100)
    await writer.settled()
    assert.deepEqual(writes, [0, 42, 100], 'a percent already written is not written again')
  })
})

describe('playlists', () => {
  it('lists only the renditions already published in the master playlist, with bandwidth, resolution and codecs', () => {
    const plan = planRenditions(video(1280, 720), ladder)
    const text = masterPlaylist(plan, new Map([['360p', 'avc1.64001e']]))
    assert.match(text, /^#EXTM3U\n/)
    assert.match(text, /#EXT-X-STREAM-INF:BANDWIDTH=\d+,RESOLUTION=640x360,CODECS="avc1\.64001e,mp4a\.40\.2"\n360p\/index\.m3u8\n/)
    assert.doesNotMatch(text, /720p/)
  })

  it('writes storyboard cues that cover the clip and point into the sprite grid', () => {
    const vtt = storyboardVtt(12, 1, 11.5, {width: 160, height: 90})
    assert.match(vtt, /^WEBVTT\n\n00:00:00\.000 --> 00:00:01\.000\nsprite\.jpg#xywh=0,0,160,90\n/)
    assert.match(vtt, /00:00:10\.000 --> 00:00:11\.000\nsprite\.jpg#xywh=0,90,160,90/)
    assert.match(vtt, /00:00:11\.000 --> 00:00:11\.500\nsprite\.jpg#xywh=160,90,160,90\n$/)
  })
})
