/**
 * Through a node that does not hold the upload, the client gets the owner's answer as the owner
 * gave it: concurrent PATCHes at one offset get the owner's 204 and 409s, never a 503 the
 * forwarder made up because the owner answered before reading the whole body.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, request, TUS} from '../support/http.js'
import {freshSchema} from '../support/node.js'
import {freePort, spawnNode, type NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'

describe('answers forwarded to the owner', {timeout: 120_000}, () => {
  let root: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  const nodes: NodeProcess[] = []

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'security-forwarding-'))
    schema = await freshSchema()
    const ports = [await freePort(), await freePort()]
    const env = (i: number) => ({
      NODE_ID: `node${i + 1}`,
      NODE_URL: `http://127.0.0.1:${ports[i]}`,
      DATA_DIR: path.join(root, `node${i + 1}`),
      DATABASE_URL: TEST_DATABASE_URL,
      DATABASE_SCHEMA: schema.schema,
      CLUSTER_SECRET: 'forwarding-test-cluster-secret-0123456789ab',
      NODE_HEARTBEAT_INTERVAL: '300ms',
      NODE_TTL: '3s',
    })
    nodes.push(await spawnNode(env(0), ports[0]))
    nodes.push(await spawnNode(env(1), ports[1]))
  })

  after(async () => {
    await Promise.all(nodes.map((n) => n.kill('SIGKILL')))
    await schema?.drop()
    if (root) await rm(root, {recursive: true, force: true})
  })

  for (const size of [256 * 1024, 8 * 1024 * 1024]) {
    it(`relays the owner's 204 and 409s for six PATCHes of ${size / 1024} KiB at one offset, never a 503`, async () => {
      for (let round = 0; round < 6; round++) {
        const url = new URL(await createUpload(nodes[0]!.url, size * 2)).pathname
        const body = randomBytes(size)
        const answers = await Promise.all(
          Array.from({length: 6}, () => request('PATCH', `${nodes[1]!.url}${url}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body}).catch((error: Error) => ({status: 0, body: error.message}))),
        )
        const statuses = answers.map((a) => a.status).sort()
        assert.ok(statuses.every((s) => s === 204 || s === 409 || s === 423), `round ${round}: ${answers.map((a) => `${a.status} ${a.body.trim().slice(0, 80)}`).join(' | ')}`)
        assert.equal(statuses.filter((s) => s === 204).length, 1, `round ${round}: one PATCH wins (${statuses})`)
        const head = await request('HEAD', `${nodes[1]!.url}${url}`, {headers: TUS})
        assert.equal(head.headers['upload-offset'], String(size))
      }
    })
  }
})
