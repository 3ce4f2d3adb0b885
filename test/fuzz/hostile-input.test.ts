/**
 * Hostile input against a running node (the compiled node as its own process, on PostgreSQL):
 * for a bounded time (FUZZ_DURATION seconds, default 60), several lanes send generated requests
 * (test/fuzz/generators.ts, seeded: FUZZ_SEED replays a run) over raw sockets, while a watcher
 * polls /healthz and /readyz. Afterwards:
 * - no answer was a 5xx (this test causes no outage, so not even 503/507), and no request hung
 *   except the bounded slow clients;
 * - the process never exited, and it is still healthy and ready;
 * - no file appeared outside DATA_DIR (the sandbox around it is snapshotted before and after,
 *   and no path anywhere nearby carries the fuzz marker), and the secret file next to DATA_DIR
 *   never came back in a response.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {pause, seededRandom, seedFrom} from '../faults/support.js'
import {createUpload, request} from '../support/http.js'
import {freshSchema} from '../support/node.js'
import {spawnNode, type NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'
import {generateCase, MARKER, slowCase} from './generators.js'
import {exchange} from './raw-client.js'

const DURATION_MS = Number(process.env.FUZZ_DURATION ?? 60) * 1000
const LANES = 8
/** 501 is HTTP's answer to a method the server does not implement (koa-router's allowedMethods): not a fault. */
const ALLOWED_5XX = new Set([501])

async function listTree(dir: string, skip: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string) => {
    for (const entry of await readdir(d, {withFileTypes: true}).catch(() => [])) {
      const full = path.join(d, entry.name)
      if (full === skip) continue
      out.push(full)
      if (entry.isDirectory()) await walk(full)
    }
  }
  await walk(dir)
  return out.sort()
}

async function markedPaths(dirs: string[]): Promise<string[]> {
  const found: string[] = []
  for (const dir of dirs) for (const name of await readdir(dir).catch(() => [])) if (name.includes(MARKER)) found.push(path.join(dir, name))
  return found
}

describe('hostile input', {timeout: DURATION_MS + 120_000}, () => {
  let sandbox: string
  let dataDir: string
  let secret: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  let node: NodeProcess
  const adminToken = randomBytes(24).toString('hex')

  before(async () => {
    sandbox = await mkdtemp(path.join(os.tmpdir(), 'fuzz-'))
    dataDir = path.join(sandbox, 'data')
    await mkdir(dataDir)
    secret = `SECRET-${randomBytes(12).toString('hex')}`
    await writeFile(path.join(sandbox, 'secret.txt'), secret)
    schema = await freshSchema()
    node = await spawnNode({
      DATA_DIR: dataDir,
      DATABASE_URL: TEST_DATABASE_URL,
      DATABASE_SCHEMA: schema.schema,
      CLUSTER_SECRET: randomBytes(24).toString('hex'),
      ADMIN_TOKEN: adminToken,
      LOG_LEVEL: 'error',
    })
  })

  after(async () => {
    await node?.kill('SIGKILL')
    await schema?.drop()
    await rm(sandbox, {recursive: true, force: true})
  })

  it('answers every generated request without a 5xx, a hang or a crash, and writes nothing outside DATA_DIR', async () => {
    const rng = seedFrom('FUZZ_SEED')
    const port = Number(new URL(node.url).port)
    const uploadPaths: string[] = []
    for (let i = 0; i < 4; i++) uploadPaths.push(new URL(await createUpload(node.url, 300_000)).pathname)
    uploadPaths.push(new URL(await createUpload(node.url, null)).pathname)
    const nearby = [sandbox, path.dirname(sandbox), process.cwd(), path.join(process.cwd(), 'data')]
    const before = await listTree(sandbox, dataDir)
    const markedBefore = await markedPaths(nearby)

    const failures: string[] = []
    const counts = new Map<number | string, number>()
    let sent = 0
    const unanswered: Array<Parameters<typeof exchange>[1] & {describe: string}> = []
    let healthFailures = 0
    const deadline = Date.now() + DURATION_MS

    const watcher = (async () => {
      while (Date.now() < deadline) {
        for (const probe of ['/healthz', '/readyz']) {
          const res = await Promise.race([request('GET', `${node.url}${probe}`).catch((e: Error) => e), pause(5000).then(() => 'timeout' as const)])
          if (res === 'timeout' || res instanceof Error || res.status !== 200) {
            healthFailures++
            failures.push(`${probe} during the run: ${res === 'timeout' ? 'no answer in 5 s' : res instanceof Error ? res.message : `${res.status} ${res.body}`}`)
          }
        }
        if (node.child.exitCode !== null || node.child.signalCode !== null) return
        await pause(1000)
      }
    })()

    const lanes = Array.from({length: LANES}, async (_, lane) => {
      // Each lane draws from its own generator, seeded from the run's, so a seed replays each lane.
      const laneRng = seededRandom((rng.seed ^ Math.imul(lane + 1, 0x9e3779b1)) >>> 0)
      while (Date.now() < deadline && node.child.exitCode === null && node.child.signalCode === null) {
        // The last lane is the slow clients' (slowloris-style, bounded): they must not starve the others.
        const fuzzCase = lane === LANES - 1 ? slowCase(laneRng, uploadPaths) : generateCase(laneRng, {uploadPaths, adminToken})
        const result = await exchange(port, fuzzCase)
        sent++
        for (const status of result.statuses) counts.set(status, (counts.get(status) ?? 0) + 1)
        if (result.statuses.length === 0 && process.env.FUZZ_DEBUG && !fuzzCase.mayHang) unanswered.push(fuzzCase)
        if (result.statuses.length === 0) counts.set(result.error ?? (result.hung ? 'hung' : 'closed'), (counts.get(result.error ?? (result.hung ? 'hung' : 'closed')) ?? 0) + 1)
        const bad = result.statuses.filter((s) => s >= 500 && !ALLOWED_5XX.has(s))
        if (bad.length > 0) failures.push(`${bad.join(',')} for ${fuzzCase.describe}\n    ${result.received.slice(0, 300).replace(/\r\n/g, '\n    ')}`)
        if (result.hung && !fuzzCase.mayHang) failures.push(`no answer in ${(fuzzCase.hardMs ?? 15_000) / 1000} s for ${fuzzCase.describe}`)
        if (result.received.includes(secret) || result.received.includes('root:x:0:0')) failures.push(`a file outside DATA_DIR came back for ${fuzzCase.describe}`)
        if (failures.length > 50) return
      }
    })
    await Promise.all(lanes)
    await watcher
    for (const fuzzCase of unanswered.slice(0, 15)) {
      const again = await exchange(port, fuzzCase)
      process.stdout.write(`# no answer during the run; alone: ${again.statuses.join(',') || again.error || 'closed'}: ${JSON.stringify(Buffer.concat(fuzzCase.parts.filter((p): p is Buffer => typeof p !== 'number')).toString('latin1').slice(0, 300))}\n`)
    }

    process.stdout.write(`# ${sent} requests in ${DURATION_MS / 1000} s; answers: ${JSON.stringify(Object.fromEntries([...counts].sort()))}\n`)
    assert.equal(node.child.exitCode, null, `the node exited:\n${node.output().slice(-3000)}`)
    assert.equal(node.child.signalCode, null, `the node was killed:\n${node.output().slice(-3000)}`)
    for (const probe of ['/healthz', '/readyz']) assert.equal((await request('GET', `${node.url}${probe}`)).status, 200, `${probe} after the run`)
    assert.deepEqual(await listTree(sandbox, dataDir), before, 'no file appeared next to DATA_DIR')
    assert.deepEqual(await markedPaths(nearby), markedBefore, `no file named after a hostile path appeared near DATA_DIR`)
    const unexpected = node.output().split('\n').filter((l) => /unexpected error|upload request failed|uncaught|unhandled/i.test(l)).map((l) => l.slice(0, 700))
    assert.equal(healthFailures, 0, failures.join('\n'))
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failures (seed ${rng.seed}); node log:\n${unexpected.slice(0, 10).join('\n').slice(0, 4000)}`)
    assert.deepEqual(unexpected.slice(0, 5), [], 'the node logged no unexpected error')
  })
})
