import assert from 'node:assert/strict'
import {constants} from 'node:fs'
import {access, chmod, mkdtemp, rm, stat, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, describe, it} from 'node:test'
import {executable} from './media-tools.js'

describe('executable (the npm-shipped media binaries)', () => {
  const dirs: string[] = []
  after(() => Promise.all(dirs.map((d) => rm(d, {recursive: true, force: true}))))

  it('sets the execute bit the skipped postinstall script would have set', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'media-tools-'))
    dirs.push(dir)
    const binary = path.join(dir, 'ffprobe')
    await writeFile(binary, '#!/bin/sh\n')
    await chmod(binary, 0o644)
    assert.equal(executable(binary), binary)
    await access(binary, constants.X_OK)
    assert.equal((await stat(binary)).mode & 0o777, 0o755)
  })

  it('gives nothing for a binary that is not there', () => {
    assert.equal(executable(path.join(os.tmpdir(), 'no-such-dir-xyz', 'ffmpeg')), undefined)
  })
})
