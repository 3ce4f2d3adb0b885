/** Test input files and their reference digests (from sha256sum and md5sum, not our code). */
import {execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {once} from 'node:events'

export async function writeRandomFile(file: string, size: number): Promise<void> {
  const out = createWriteStream(file)
  let left = size
  while (left > 0) {
    const n = Math.min(left, 1 << 20)
    if (!out.write(randomBytes(n))) await once(out, 'drain')
    left -= n
  }
  out.end()
  await once(out, 'finish')
}

export function referenceDigests(file: string): {sha256: string; md5: string} {
  const sha256 = execFileSync('sha256sum', [file], {encoding: 'utf8'}).split(' ')[0]!
  const md5 = execFileSync('md5sum', [file], {encoding: 'utf8'}).split(' ')[0]!
  return {sha256, md5}
}
