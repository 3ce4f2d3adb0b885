import assert from 'node:assert/strict'
import {createServer, type IncomingMessage} from 'node:http'
import type {AddressInfo} from 'node:net'
import {test} from 'node:test'
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'
import {sendWebhook, WebhookFailed} from './webhook-sender.js'

const key = Buffer.alloc(32, 9)
const delivery = {webhookId: 'msg_1', body: JSON.stringify({type: 'upload.ready', timestamp: new Date().toISOString(), data: {id: 'u1'}})}

async function receiver(answer: (req: IncomingMessage, body: string) => number | null) {
  const seen: Array<{headers: IncomingMessage['headers']; body: string}> = []
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      seen.push({headers: req.headers, body})
      const status = answer(req, body)
      if (status !== null) res.writeHead(status).end('ok')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {seen, port, close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })}
}

const options = (overrides: Partial<Parameters<typeof sendWebhook>[3]> = {}) => ({timeoutMs: 2000, signal: new AbortController().signal, allowPrivate: true, ...overrides})

test('a delivery is POSTed whole with its signature headers; a 2xx is its status, anything else a WebhookFailed', async () => {
  let status = 204
  const rx = await receiver(() => status)
  try {
    assert.equal(await sendWebhook(`http://127.0.0.1:${rx.port}/hooks`, key, delivery, options()), 204)
    assert.equal(rx.seen[0]!.body, delivery.body)
    assert.equal(rx.seen[0]!.headers['webhook-id'], 'msg_1')
    assert.match(String(rx.seen[0]!.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/)
    status = 500
    await assert.rejects(sendWebhook(`http://127.0.0.1:${rx.port}/hooks`, key, delivery, options()), (error: Error) => error instanceof WebhookFailed && /answered 500/.test(error.message))
    status = 302
    await assert.rejects(sendWebhook(`http://127.0.0.1:${rx.port}/hooks`, key, delivery, options()), /answered 302/)
  } finally {
    await rx.close()
  }
})

test('the host is checked when the connection is made: a name that resolves to this machine is not called unless private targets are allowed', async () => {
  const rx = await receiver(() => 200)
  try {
    await assert.rejects(
      sendWebhook(`http://localhost:${rx.port}/hooks`, key, delivery, options({allowPrivate: false})),
      (error: Error) => error instanceof WebhookFailed && /localhost resolves to this machine/.test(error.message)
    )
    assert.equal(rx.seen.length, 0, 'the receiver on this machine was never called')
    assert.equal(await sendWebhook(`http://localhost:${rx.port}/hooks`, key, delivery, options({allowPrivate: true})), 200)
    assert.equal(rx.seen.length, 1)
  } finally {
    await rx.close()
  }
})

test('a receiver that never answers fails the attempt after the timeout', async () => {
  const rx = await receiver(() => null)
  try {
    const started = Date.now()
    await assert.rejects(sendWebhook(`http://127.0.0.1:${rx.port}/hooks`, key, delivery, options({timeoutMs: 300})), /no answer within 300 ms/)
    assert.ok(Date.now() - started < 5000)
  } finally {
    await rx.close()
  }
})

test('the timeout holds while the garbage collector runs (a timeout signal inside AbortSignal.any() could be collected, nodejs/node#57736)', async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const rx = await receiver(() => null)
  const collecting = setInterval(gc, 10)
  try {
    // Without the fix the attempt never ends: a deadline of the test's own makes that a failure, not a hang.
    let deadline: NodeJS.Timeout | undefined
    const never = new Promise<never>((_, reject) => (deadline = setTimeout(() => reject(new Error('the attempt never ended')), 5000)))
    await assert.rejects(Promise.race([sendWebhook(`http://127.0.0.1:${rx.port}/hooks`, key, delivery, options({timeoutMs: 300})), never]), /no answer within 300 ms/)
    clearTimeout(deadline)
  } finally {
    clearInterval(collecting)
    await rx.close()
  }
})
