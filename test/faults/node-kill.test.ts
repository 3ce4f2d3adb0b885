/**
 * The node process killed with SIGKILL at random points of 20 uploads (seeded: FAULT_SEED
 * replays the kill points), restarted on the same port each time. Every client resumes from
 * HEAD's offset; at the end each upload is completed with the sha256 that `sha256sum` gives
 * for its source file, the stored file matches too, and no upload is missing.
 */
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {referenceDigests, writeRandomFile} from '../support/files.js'
import {createUpload, request, TUS} from '../support/http.js'
import {freshSchema} from '../support/node.js'
import {freePort, spawnNode, type NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'
import {pause, seedFrom, streamingPatch} from './support.js'

const UPLOADS = 20
const CHUNK = 64 * 1024

describe('node killed during uploads', {timeout: 240_000}, () => {
  let dir: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let node: NodeProcess | undefined
  const spawned: NodeProcess[] = []
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fault-kill-'))
    schema = await freshSchema()
  })
  after(async () => {
    await Promise.all(spawned.map((n) => n.kill('SIGKILL')))
    await schema?.drop()
    await rm(dir, {recursive: true, force: true})
  })

  it('every upload resumes to the right sha256 after SIGKILLs at random points', async () => {
    const rng = seedFrom('FAULT_SEED')
    const env = {DATA_DIR: path.join(dir, 'data'), DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema.schema}
    const port = await freePort()
    node = await spawnNode(env, port)
    spawned.push(node)
    let up: Promise<void> = Promise.resolve()
    let kills = 0
    // Kills are chained: two lanes asking at once must not both restart a node (one would leak,
    // keep the test process alive and hang the suite).
    const killNow = () => {
      kills++
      up = up.then(async () => {
        await node!.kill('SIGKILL')
        node = await spawnNode(env, port)
        spawned.push(node)
      })
    }

    // A kill point is a fraction of one upload's bytes (1 means after the last byte, before the answer).
    const files = Array.from({length: UPLOADS}, (_, i) => ({file: path.join(dir, `src-${i}`), size: rng.int(256 * 1024, 3 << 20), killAt: rng.chance(0.4) ? rng.pick([0, 1, rng.next()]) : undefined}))
    for (const f of files) await writeRandomFile(f.file, f.size)
    process.stdout.write(`# kill points: ${files.map((f, i) => (f.killAt === undefined ? '' : `${i}@${f.killAt.toFixed(2)}`)).filter(Boolean).join(' ')}\n`)

    async function send(f: (typeof files)[number]): Promise<string> {
      const data = await readFile(f.file)
      let url: string | undefined
      // Another lane may kill the node while this one creates its upload: try again once it is back.
      for (let i = 0; i < 20 && !url; i++) {
        await up
        url = await createUpload(node!.url, f.size).catch(() => pause(200).then(() => undefined))
      }
      if (!url) throw new Error(`could not create an upload for ${f.file}`)
      let killPending = f.killAt !== undefined
      for (let attempt = 0; attempt < 20; attempt++) {
        await up
        const head = await request('HEAD', url, {headers: TUS}).catch(() => undefined)
        if (!head || head.status !== 200) {
          await pause(200)
          continue
        }
        let offset = Number(head.headers['upload-offset'])
        if (offset === f.size) return url
        const patch = streamingPatch(url, offset, {'Content-Length': String(f.size - offset)})
        for (; offset < f.size; offset += CHUNK) {
          if (killPending && offset >= f.killAt! * f.size && kills < 12) {
            killPending = false
            killNow()
          }
          await patch.write(data.subarray(offset, offset + CHUNK))
        }
        if (killPending && kills < 12) {
          killPending = false
          killNow()
        }
        patch.end()
        const res = await patch.response
        if (!(res instanceof Error) && res.status === 204 && Number(res.headers['upload-offset']) === f.size) return url
        await pause(100)
      }
      throw new Error(`${f.file} did not finish in 20 attempts`)
    }

    const urls: string[] = []
    for (let i = 0; i < UPLOADS; i += 4) urls.push(...(await Promise.all(files.slice(i, i + 4).map(send))))
    await up
    process.stdout.write(`# ${kills} kills\n`)
    assert.ok(kills >= 1, 'at least one kill happened')

    for (const [i, url] of urls.entries()) {
      const id = url.split('/').pop()!
      const expected = referenceDigests(files[i]!.file).sha256
      const deadline = Date.now() + 20_000
      let status: Record<string, unknown> = {}
      while (Date.now() < deadline) {
        status = (await (await fetch(`${node!.url}/api/uploads/${id}`)).json()) as Record<string, unknown>
        if (status.completedAt) break
        await pause(200)
      }
      // Received in full (random bytes then fail as media: "failed" is the media verdict, not the upload's).
      assert.ok(status.completedAt && status.offset === files[i]!.size, `upload ${i} completed: ${JSON.stringify(status).slice(0, 400)}`)
      assert.equal(status.sha256, expected, `upload ${i}: recorded sha256`)
      assert.equal(referenceDigests(path.join(env.DATA_DIR, 'uploads', id)).sha256, expected, `upload ${i}: stored bytes`)
    }
  })
})
