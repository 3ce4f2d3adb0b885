/**
 * The whole-file SHA-256 and MD5, computed as the bytes arrive. The hashers' internal state is
 * saved with the upload's row after every request, so a resume on a restarted process (or
 * another node) continues the same hash instead of re-reading the file. Node's crypto cannot
 * export a hash state; hash-wasm can.
 */
import {createReadStream} from 'node:fs'
import {createMD5, createSHA256, type IHasher} from 'hash-wasm'

export interface FileDigests {
  sha256: string
  md5: string
}

export class UploadHasher {
  private constructor(
    private readonly sha256: IHasher,
    private readonly md5: IHasher,
    /** Bytes hashed so far, from the start of the upload. */
    public bytes: number
  ) {}

  static async resume(saved: Uint8Array | null, bytes: number): Promise<UploadHasher> {
    const [sha256, md5] = await Promise.all([createSHA256(), createMD5()])
    if (saved && bytes > 0) {
      // pg gives a Buffer, PGlite a plain Uint8Array.
      const state = Buffer.from(saved.buffer, saved.byteOffset, saved.byteLength)
      const shaLength = state.readUInt32BE(0)
      sha256.load(state.subarray(4, 4 + shaLength))
      md5.load(state.subarray(4 + shaLength))
    } else {
      sha256.init()
      md5.init()
      bytes = 0
    }
    return new UploadHasher(sha256, md5, bytes)
  }

  update(chunk: Uint8Array): void {
    this.sha256.update(chunk)
    this.md5.update(chunk)
    this.bytes += chunk.byteLength
  }

  save(): Buffer {
    const sha = this.sha256.save()
    const md5 = this.md5.save()
    const header = Buffer.alloc(4)
    header.writeUInt32BE(sha.byteLength, 0)
    return Buffer.concat([header, sha, md5])
  }

  /** Finishes the hashes; the hasher cannot be updated afterwards. */
  digests(): FileDigests {
    return {sha256: this.sha256.digest('hex'), md5: this.md5.digest('hex')}
  }

  /**
   * Hashes bytes that reached the file without their state being saved (a process killed in
   * the middle of a request): only the gap is read, never the whole file.
   */
  async catchUp(filePath: string, toOffset: number): Promise<void> {
    if (toOffset <= this.bytes) return
    const stream = createReadStream(filePath, {start: this.bytes, end: toOffset - 1, highWaterMark: 1 << 20})
    for await (const chunk of stream) this.update(chunk as Buffer)
    if (this.bytes !== toOffset) {
      throw new Error(`upload file is shorter (${this.bytes} bytes) than its recorded offset (${toOffset})`)
    }
  }
}
