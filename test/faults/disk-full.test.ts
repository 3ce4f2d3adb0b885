/**
 * A full disk: DATA_DIR on an 8 MiB tmpfs (mounted here; the test runs as root, and unmounts
 * in a finally), the database in PostgreSQL. An upload larger than the space left gets a 507
 * with a message; its record stays consistent with its file (the offset equals the file's
 * size); once space is freed the upload resumes and completes with the right sha256.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, rm, rmdir, stat, unlink, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, request, TUS} from '../support/http.js'
import {freshSchema} from '../support/node.js'
import {spawnNode, type NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'

describe('disk full', {timeout: 90_000}, () => {
  let mount: string
  let mounted = false
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let node: NodeProcess | undefined
  before(async () => {
    mount = await mkdtemp(path.join(os.tmpdir(), 'fault-disk-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mount])
    mounted = true
    schema = await freshSchema()
  })
  after(async () => {
    await node?.kill('SIGKILL')
    if (mounted) await unmount(mount)
    await rmdir(mount).catch(() => {})
    await schema?.drop()
  })

  it('answers 507 with a message, keeps the record equal to the file, and resumes once space is freed', async () => {
    node = await spawnNode({DATA_DIR: mount, DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema.schema})
    // Leave about 3 MiB free, then send a 5 MiB upload.
    const filler = path.join(mount, 'filler')
    await writeFile(filler, randomBytes(5 << 20))
    const size = 5 << 20
    const data = randomBytes(size)
    const url = await createUpload(node.url, size)
    const id = url.split('/').pop()!

    const full = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body: data})
    assert.equal(full.status, 507, `${full.body}\n${node.output().slice(-3000)}`)
    assert.match(full.body, /no space left/)
    const head = await request('HEAD', url, {headers: TUS})
    assert.equal(head.status, 200)
    const offset = Number(head.headers['upload-offset'])
    assert.ok(offset < size, `partly stored: ${offset}`)
    assert.equal((await stat(path.join(mount, 'uploads', id))).size, offset, 'the record says exactly what the file holds')

    // A new upload cannot even be created while the disk is full... or can, and fails on write: either way no 500.
    const another = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': 1 << 20, 'Content-Type': 'application/offset+octet-stream'}, body: data.subarray(0, 1 << 20)})
    assert.ok([201, 507].includes(another.status), `a second upload while full: ${another.status} ${another.body}`)
    assert.equal((await request('GET', `${node.url}/healthz`)).status, 200)

    await unlink(filler)
    const rest = await request('PATCH', url, {headers: {...PATCH_HEADERS, 'Upload-Offset': offset}, body: data.subarray(offset)})
    assert.equal(rest.status, 204, rest.body)
    const status = (await (await fetch(`${node.url}/api/uploads/${id}`)).json()) as Record<string, unknown>
    assert.equal(status.status, 'completed')
    assert.equal(status.sha256, createHash('sha256').update(data).digest('hex'))
    await rm(path.join(mount, 'uploads'), {recursive: true, force: true})
  })
})

/** A killed node's files may close a moment after its exit is seen ("target is busy"): retry, then detach lazily. */
async function unmount(target: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      execFileSync('umount', [target], {stdio: 'pipe'})
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
  execFileSync('umount', ['-l', target])
}
