/**
 * How much of a file arrived, judged by what its container declares. ISO BMFF (MP4, MOV, M4A)
 * is a list of top-level boxes each stating its size: when the last box claims to end past the
 * end of the file, the file was cut short, and size / declared end says where.
 */
import {open} from 'node:fs/promises'

const HEADER = 16

/** The byte count the top-level boxes declare, or undefined when the file is not ISO BMFF. */
export async function declaredIsoBmffSize(file: string): Promise<number | undefined> {
  const handle = await open(file, 'r')
  try {
    const {size} = await handle.stat()
    const header = Buffer.alloc(HEADER)
    let offset = 0
    let boxes = 0
    while (offset < size) {
      const {bytesRead} = await handle.read(header, 0, HEADER, offset)
      if (bytesRead < 8) return boxes === 0 ? undefined : offset + 8
      const type = header.toString('latin1', 4, 8)
      if (!/^[\x20-\x7e]{4}$/.test(type)) return undefined
      if (boxes === 0 && !['ftyp', 'styp', 'moov', 'mdat', 'free', 'skip', 'wide'].includes(type)) return undefined
      let boxSize = header.readUInt32BE(0)
      if (boxSize === 1) {
        if (bytesRead < 16) return offset + 16
        boxSize = Number(header.readBigUInt64BE(8))
      } else if (boxSize === 0) {
        return size // "extends to the end of the file": declares nothing more.
      }
      if (boxSize < 8) return undefined
      offset += boxSize
      boxes++
    }
    return offset
  } finally {
    await handle.close()
  }
}

/** Whole percent of the declared file that is present, or undefined when the file is complete or not ISO BMFF. */
export async function truncatedPercent(file: string, actualSize: number): Promise<number | undefined> {
  const declared = await declaredIsoBmffSize(file)
  if (declared === undefined || declared <= actualSize) return undefined
  return Math.floor((actualSize / declared) * 100)
}
