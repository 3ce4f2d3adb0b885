import assert from 'node:assert/strict'
import {test} from 'node:test'
import {ERRORS} from '@tus/utils'
import {QueryFailedError} from 'typeorm'
import {ChecksumMismatch, Conflict, ServiceUnavailable, TooManyRequests} from '../errors.js'
import {answerError, meaningOfError} from './error-answer.js'
import {DraftError} from './resumable-draft/draft-error.js'

test('a query that waited too long for a pooled connection is a 503 to retry, not a 500', () => {
  // What pg-pool rejects with when every connection is busy for connectionTimeoutMillis.
  const meaning = meaningOfError(new Error('timeout exceeded when trying to connect'))
  assert.equal(meaning.status, 503)
  assert.ok(Number(meaning.headers['Retry-After']) > 0)
})

test('a database that cannot be reached is a 503 also when wrapped: TypeORM\'s driverError, a cause, an AggregateError of refused connections', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {code: 'ECONNREFUSED'})
  const wrapped = [
    new QueryFailedError('UPDATE uploads SET bytes_received = $1', [1], new Error('Connection terminated unexpectedly')),
    new Error('could not record progress', {cause: refused}),
    new AggregateError([refused, refused], 'connect failed'),
    Object.assign(new Error('terminating connection due to administrator command'), {code: '57P01'}),
    Object.assign(new Error('the database system is starting up'), {code: '08006'}),
  ]
  for (const error of wrapped) {
    const meaning = meaningOfError(error)
    assert.equal(meaning.status, 503, `${error.message}: ${meaning.status}`)
    assert.ok(Number(meaning.headers['Retry-After']) > 0)
  }
  // A query PostgreSQL refused for what it says is not an outage.
  assert.equal(meaningOfError(Object.assign(new Error('duplicate key'), {code: '23505'})).status, 500)
})

test('an unexpected error is a 500 that shows nothing of it, logged as an error', () => {
  const answer = answerError(new Error('secret internals broke'), {kind: 'api'}, 'req-1')
  assert.equal(answer.status, 500)
  assert.equal(answer.log, 'error')
  assert.deepEqual(JSON.parse(answer.body), {error: 'internal error', requestId: 'req-1'})
  assert.doesNotMatch(answerError(new Error('secret internals broke'), {kind: 'tus'}).body, /secret/)
})

test('every 503 and 429 says when to come back; one the error names is kept', () => {
  assert.equal(meaningOfError(new ServiceUnavailable('down')).headers['Retry-After'], '5')
  assert.equal(meaningOfError(new TooManyRequests('slow down')).headers['Retry-After'], '60')
  assert.equal(meaningOfError(new ServiceUnavailable('owner down', {'Retry-After': '10'})).headers['Retry-After'], '10')
  assert.equal(meaningOfError(new Conflict('no')).headers['Retry-After'], undefined)
})

test('one body format per protocol: JSON for the API, plain text for tus, problem documents for the draft', () => {
  const error = new Conflict('offset 3 is not where the upload is')
  const api = answerError(error, {kind: 'api'})
  assert.deepEqual(JSON.parse(api.body), {error: 'offset 3 is not where the upload is'})
  const tus = answerError(error, {kind: 'tus'})
  assert.equal(tus.body, 'offset 3 is not where the upload is\n')
  assert.equal(tus.headers['Tus-Resumable'], '1.0.0')
  assert.match(tus.headers['Content-Type']!, /^text\/plain/)
  const mismatch = new DraftError(409, 'offset mismatch', {type: 'mismatchingOffset', members: {'expected-offset': 5, 'provided-offset': 3}})
  const draft = answerError(mismatch, {kind: 'draft', version: 8})
  assert.equal(draft.headers['Content-Type'], 'application/problem+json')
  assert.equal(draft.headers['Upload-Draft-Interop-Version'], '8')
  assert.equal(JSON.parse(draft.body)['expected-offset'], 5)
  // Interop 3 has no problem types: the same refusal in plain text.
  assert.equal(answerError(mismatch, {kind: 'draft', version: 3}).body, 'offset mismatch\n')
})

test("@tus/server's own refusals keep their status and reason; its 500s are ours to log", () => {
  const notFound = answerError(ERRORS.FILE_NOT_FOUND, {kind: 'tus'})
  assert.equal(notFound.status, 404)
  assert.equal(notFound.body, ERRORS.FILE_NOT_FOUND.body)
  assert.equal(notFound.log, 'none')
  assert.equal(answerError(ERRORS.ERR_LOCK_TIMEOUT, {kind: 'tus'}).status, 423)
  assert.equal(answerError(ERRORS.UNKNOWN_ERROR, {kind: 'tus'}).log, 'error')
  assert.equal(answerError(ERRORS.UNSUPPORTED_CONCATENATION_EXTENSION, {kind: 'draft', version: 8}).status, 501)
})

test('460 carries its reason phrase for tus', () => {
  assert.equal(answerError(new ChecksumMismatch('the body does not match'), {kind: 'tus'}).statusText, 'Checksum Mismatch')
  assert.equal(answerError(new Conflict('no'), {kind: 'tus'}).statusText, undefined)
})

test('a node out of file descriptors answers 503 with Retry-After, not 500', () => {
  for (const code of ['EMFILE', 'ENFILE']) {
    const meaning = meaningOfError(Object.assign(new Error(`${code}: too many open files, open '/data/uploads/x'`), {code}))
    assert.equal(meaning.status, 503, code)
    assert.ok(Number(meaning.headers['Retry-After']) > 0)
    assert.doesNotMatch(meaning.message, /\/data/)
  }
})
