/**
 * Through a node that does not hold the upload, the client gets the owner's answer as the owner
 * gave it: concurrent PATCHes at one offset get the owner's 204 and 409s, never a 503 the
 * forwarder made up because the owner answered before reading the whole body. The body itself
 * is sealed between the nodes: a man in the middle (a proxy in front of the owner, which is the
 * URL its peers know it by) who changes one byte gets nothing kept, and the client is told.
 */
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import net from 'node:net'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createUpload, PATCH_HEADERS, request, TUS} from '../support/http.js'
import {freshSchema} from '../support/node.js'
import {freePort, spawnNode, type NodeProcess} from '../support/process-node.js'
import {TEST_DATABASE_URL} from '../support/services.js'
import {startTamperingProxy, type TamperingProxy} from '../support/tampering-proxy.js'

describe('answers forwarded to the owner', {timeout: 120_000}, () => {
  let root: string
  let schema: Awaited<ReturnType<typeof freshSchema>>
  const nodes: NodeProcess[] = []
  let proxy: TamperingProxy

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'security-forwarding-'))
    schema = await freshSchema()
    const ports = [await freePort(), await freePort()]
    proxy = await startTamperingProxy(`http://127.0.0.1:${ports[0]}`)
    const env = (i: number) => ({
      NODE_ID: `node${i + 1}`,
      NODE_URL: i === 0 ? proxy.url : `http://127.0.0.1:${ports[i]}`,
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
    await proxy?.close()
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
  const MARKER = Buffer.from('<<tamper-here>>')
  const bodyWithMarker = (size: number) => {
    const body = randomBytes(size)
    MARKER.copy(body, 1000)
    return body
  }
  const offsetOf = async (url: string) => (await request('HEAD', `${nodes[0]!.url}${url}`, {headers: TUS})).headers['upload-offset']

  for (const size of [256 * 1024, 8 * 1024 * 1024]) {
    it(`keeps none of a forwarded ${size / 1024} KiB PATCH altered between the nodes, tells the client, and takes it untouched`, async () => {
      const url = new URL(await createUpload(nodes[0]!.url, size)).pathname
      const body = bodyWithMarker(size)
      proxy.arm(MARKER)
      const altered = await request('PATCH', `${nodes[1]!.url}${url}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body})
      assert.equal(proxy.tampered > 0, true, 'the proxy changed a byte')
      proxy.disarm()
      assert.equal(altered.status, 460, altered.body)
      assert.match(altered.body, /altered between the node/)
      assert.equal(await offsetOf(url), '0', 'nothing of the altered request was kept')

      const honest = await request('PATCH', `${nodes[1]!.url}${url}`, {headers: {...PATCH_HEADERS, 'Upload-Offset': 0}, body})
      assert.equal(honest.status, 204, honest.body)
      assert.equal(honest.headers['upload-offset'], String(size))
      const record = JSON.parse((await request('GET', `${nodes[1]!.url}/api/uploads/${url.split('/').pop()}`)).body) as {status: string; sha256: string}
      assert.equal(record.sha256, createHash('sha256').update(body).digest('hex'))
    })
  }

  it('keeps what arrived of a forwarded PATCH whose client went away mid-body', async () => {
    const url = new URL(await createUpload(nodes[0]!.url, 40_000)).pathname
    const socket = net.connect(Number(new URL(nodes[1]!.url).port), '127.0.0.1')
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
    socket.write(`PATCH ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 40000\r\n\r\n`)
    socket.write(Buffer.alloc(20_000, 120))
    await new Promise((r) => setTimeout(r, 300))
    socket.destroy()
    const deadline = Date.now() + 5000
    let offset = await offsetOf(url)
    while (offset !== '20000' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100))
      offset = await offsetOf(url)
    }
    assert.equal(offset, '20000', 'every byte the forwarder passed on was kept')
  })

  it("relays the owner's 104 Upload Resumption Supported answers of a long draft append", async () => {
    const v = {'Upload-Draft-Interop-Version': '8'}
    const created = await request('POST', `${nodes[0]!.url}/files/`, {headers: {...v, 'Upload-Complete': '?0'}, body: ''})
    const url = new URL(String(created.headers.location), nodes[0]!.url).pathname
    const total = 6 * 8192
    const socket = net.connect(Number(new URL(nodes[1]!.url).port), '127.0.0.1')
    let received = ''
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')))
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
    socket.write(`PATCH ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: 8\r\nUpload-Complete: ?1\r\nUpload-Offset: 0\r\nContent-Type: application/partial-upload\r\nContent-Length: ${total}\r\n\r\n`)
    for (let i = 0; i < 6; i++) {
      socket.write(Buffer.alloc(8192, 97 + i))
      await new Promise((r) => setTimeout(r, 500))
    }
    const deadline = Date.now() + 5000
    while (!/HTTP\/1\.1 204/.test(received) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    socket.destroy()
    const interims = received.match(/HTTP\/1\.1 104 [^\r]*\r\n(?:[^\r]+\r\n)*\r\n/g) ?? []
    assert.ok(interims.length >= 1, `a 104 reached the client through the non-owner:\n${received.slice(0, 500)}`)
    assert.ok(interims.every((i) => /upload-offset: \d+/i.test(i)), interims.join(''))
    assert.match(received, /HTTP\/1\.1 204/)
    assert.equal((await request('HEAD', `${nodes[0]!.url}${url}`, {headers: v})).headers['upload-offset'], String(total))
  })
})
