/**
 * Upload inputs: files of pseudo-random bytes generated in a temporary directory and removed
 * afterwards. One random 16 MiB block, stamped with its index each time it is written, gives
 * incompressible, non-repeating-looking data at disk speed; hashing costs the same on any bytes,
 * but nothing can shortcut all-zero data this way.
 */
import {randomFillSync} from 'node:crypto'
import {mkdtemp, open, rm, statfs} from 'node:fs/promises'
import path from 'node:path'
import {formatBytes, GiB, MiB} from './format.js'
import {settings} from './settings.js'

const BLOCK = 16 * MiB

/** Fails early, with the figures, when the disk cannot hold what a suite will write. */
export async function requireFreeSpace(dir: string, bytes: number, purpose: string): Promise<void> {
  const stats = await statfs(dir)
  const free = stats.bavail * stats.bsize
  const margin = 2 * GiB
  if (free < bytes + margin) {
    throw new Error(`${purpose} needs ${formatBytes(bytes)} (+${formatBytes(margin)} margin) free in ${dir}; only ${formatBytes(free)} is free`)
  }
}

export interface Workspace {
  dir: string
  remove(): Promise<void>
}

export async function createWorkspace(prefix: string): Promise<Workspace> {
  const dir = await mkdtemp(path.join(settings.tmpDir, `${prefix}-`))
  return {dir, remove: () => rm(dir, {recursive: true, force: true})}
}

/** A buffer of pseudo-random bytes (for the many small uploads). */
export function randomBuffer(bytes: number): Buffer {
  return randomFillSync(Buffer.allocUnsafe(bytes))
}

/** Writes `bytes` pseudo-random bytes to `file`. */
export async function generateFile(file: string, bytes: number): Promise<void> {
  const block = randomBuffer(BLOCK)
  const handle = await open(file, 'w')
  try {
    for (let offset = 0, index = 0; offset < bytes; offset += BLOCK, index++) {
      block.writeUInt32LE(index, 0)
      block.writeUInt32LE((index ^ 0x9e3779b9) >>> 0, BLOCK >> 1)
      const length = Math.min(BLOCK, bytes - offset)
      let written = 0
      while (written < length) {
        const {bytesWritten} = await handle.write(block, written, length - written, offset + written)
        written += bytesWritten
      }
    }
  } finally {
    await handle.close()
  }
}
