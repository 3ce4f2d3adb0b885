/**
 * What one request costs the database: the statements each tus request sends, counted as the
 * node's TypeORM sends them (its logger sees every query, in the request's async context).
 * Creation is one INSERT, with no read of the row it made; a PATCH in the middle of an upload
 * reads the row once (under the upload's lock) and records its offset; a HEAD reads it once.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {after, before, describe, it} from 'node:test'
import type {Logger as TypeOrmLogger} from 'typeorm'
import {uploadCompletedSchema} from '../src/events/event-schemas.js'
import {currentRequest} from '../src/request-context.js'
import {request, TUS, type RawResponse} from './support/http.js'
import {startTestNode, type TestNode} from './support/node.js'

describe('database round trips per tus request (postgres)', () => {
  let node: TestNode
  /** The statements sent within a request, by request id. */
  const statements = new Map<string, string[]>()
  const counted = async (send: () => Promise<RawResponse>) => {
    const res = await send()
    const id = String(res.headers['x-request-id'])
    return {res, sql: statements.get(id) ?? []}
  }
  before(async () => {
    node = await startTestNode('postgres')
    const logger = node.db.logger
    const counting: TypeOrmLogger = {
      logQuery(query, parameters, runner) {
        const context = currentRequest()
        if (context) statements.set(context.requestId, [...(statements.get(context.requestId) ?? []), query])
        logger.logQuery(query, parameters, runner)
      },
      logQueryError: (...args) => logger.logQueryError(...args),
      logQuerySlow: (...args) => logger.logQuerySlow(...args),
      logSchemaBuild: (...args) => logger.logSchemaBuild(...args),
      logMigration: (...args) => logger.logMigration(...args),
      log: (...args) => logger.log(...args),
    }
    Object.defineProperty(node.db, 'logger', {value: counting})
  })
  after(() => node?.stop())

  /** A new upload of `length` bytes, and a PATCH of 1000 of them at an offset. */
  const uploadOf = async (length: number) => {
    const res = await request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': length}})
    const url = new URL(String(res.headers.location), node.url).toString()
    const patch = (offset: number) => request('PATCH', url, {headers: {...TUS, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': offset}, body: randomBytes(1000)})
    return {url, patch}
  }

  it('creates an upload with one INSERT and nothing else', async () => {
    const {res, sql} = await counted(() => request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': 10}}))
    assert.equal(res.status, 201)
    assert.equal(sql.length, 1, sql.join('\n'))
    assert.match(sql[0]!, /^INSERT INTO/)
  })

  it('creates an upload of a deferred length with one INSERT too', async () => {
    const {res, sql} = await counted(() => request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Defer-Length': 1}}))
    assert.equal(res.status, 201)
    assert.equal(sql.length, 1, sql.join('\n'))
  })

  it('creates an upload with a first piece of its body in one INSERT and one UPDATE of its offset', async () => {
    const body = randomBytes(1000)
    const {res, sql} = await counted(() => request('POST', `${node.url}/files/`, {headers: {...TUS, 'Upload-Length': 4000, 'Content-Type': 'application/offset+octet-stream'}, body}))
    assert.equal(res.status, 201, res.body)
    assert.equal(res.headers['upload-offset'], '1000')
    assert.deepEqual(sql.map((q) => q.split(' ')[0]), ['INSERT', 'UPDATE'], sql.join('\n'))
  })

  it('completes an upload in one statement (the row with its digests and its outbox event), reading nothing again', async () => {
    const {url, patch} = await uploadOf(2000)
    assert.equal((await patch(0)).status, 204)
    const {res: last, sql} = await counted(() => patch(1000))
    assert.equal(last.status, 204, last.body)
    const verbs = sql.map((q) => q.trim().split(/\s+/)[0])
    // The offset recorded, then the completion: one statement, with no SELECT before or after it.
    const progress = verbs.indexOf('UPDATE')
    assert.deepEqual(verbs.slice(progress), ['UPDATE', 'WITH'], sql.join('\n'))
    assert.match(sql.at(-1)!, /INSERT INTO outbox/)
    const id = url.split('/').pop()!
    const status = (await (await fetch(`${node.url}/api/uploads/${id}`)).json()) as Record<string, unknown>
    assert.equal(status.status, 'completed')
    assert.match(String(status.sha256), /^[0-9a-f]{64}$/)
    // The event the statement wrote is the one consumers are promised (the schema they parse).
    const [event] = (await node.db.query(`SELECT topic, payload FROM outbox WHERE upload_id = $1`, [id])) as Array<{topic: string; payload: unknown}>
    assert.equal(event?.topic, 'upload.completed')
    const payload = uploadCompletedSchema.parse(event!.payload)
    assert.deepEqual({uploadId: payload.uploadId, size: payload.size, sha256: payload.sha256, owner: payload.owner}, {uploadId: id, size: 2000, sha256: status.sha256, owner: null})
  })

  it('answers a PATCH in the middle of an upload with one read of the row and one UPDATE, and a HEAD with one read', async () => {
    const {url, patch} = await uploadOf(3000)
    assert.equal((await patch(0)).status, 204)
    const {res: middle, sql} = await counted(() => patch(1000))
    assert.equal(middle.status, 204, middle.body)
    assert.deepEqual(sql.map((q) => q.trim().split(/\s+/)[0]), ['SELECT', 'UPDATE'], sql.join('\n'))
    const {res: head, sql: headSql} = await counted(() => request('HEAD', url, {headers: TUS}))
    assert.equal(head.headers['upload-offset'], '2000')
    assert.deepEqual(headSql.map((q) => q.trim().split(/\s+/)[0]), ['SELECT'], headSql.join('\n'))
  })
})
