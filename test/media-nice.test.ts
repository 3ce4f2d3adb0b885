/**
 * Issue 16, point 4: ffmpeg runs at MEDIA_NICE, below the upload path, read from /proc while it
 * runs (field 19 of /proc/<pid>/stat).
 */
import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import os from 'node:os'
import {describe, it} from 'node:test'
import ffmpeg from 'fluent-ffmpeg'
import {loadConfig} from '../src/config/index.js'
import {runFfmpeg} from '../src/media/ffmpeg-run.js'
import {locateMediaTools} from '../src/media/media-tools.js'

/** Niceness of every running process whose command line mentions `marker`. */
async function nicenessOf(marker: string): Promise<number[]> {
  const found: number[] = []
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (!cmdline.includes('ffmpeg') || !cmdline.includes(marker)) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    // Fields after "(comm)" start at field 3 (state): field 19 (nice) is the 17th of them.
    if (stat) found.push(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]))
  }
  return found
}

describe('media tools priority', () => {
  it('MEDIA_NICE defaults to 19 (the lowest priority) and reaches the located tools', () => {
    const config = loadConfig({}, {dataDir: '/tmp/unused'})
    assert.equal(config.mediaNice, 19)
    assert.equal(locateMediaTools({searchPath: process.env.PATH ?? '', mediaNice: config.mediaNice}).nice, 19)
  })

  it('runs ffmpeg at that niceness while it works', async () => {
    const tools = locateMediaTools({searchPath: process.env.PATH ?? '', mediaNice: 10})
    const marker = `nice-probe-${process.pid}`
    // Real time (-re) so it is still running when we look; the marker names it in /proc.
    const command = ffmpeg({source: `testsrc2=size=64x36:rate=10:duration=3`, stdoutLines: 5})
      .inputOptions(['-re', '-f', 'lavfi'])
      .outputOptions(['-metadata', `title=${marker}`, '-f', 'null'])
      .output('-')
    const seen: number[] = []
    const run = runFfmpeg(tools, command, {outputDuration: 3, timeoutMs: 30_000})
    const deadline = Date.now() + 5000
    while (seen.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100))
      seen.push(...(await nicenessOf(marker)))
    }
    await run
    assert.ok(seen.length > 0, 'ffmpeg seen running')
    assert.deepEqual([...new Set(seen)], [Math.max(10, os.getPriority())])
  })
})
