import assert from 'node:assert/strict'
import {test} from 'node:test'
import {errorToAnswer} from './error-handler.js'

test('a query that waited too long for a pooled connection is a 503 to retry, not a 500', () => {
  // What pg-pool rejects with when every connection is busy for connectionTimeoutMillis.
  const answer = errorToAnswer(new Error('timeout exceeded when trying to connect'))
  assert.equal(answer?.status, 503)
  assert.ok(Number(answer?.headers['Retry-After']) > 0)
})

test('an unexpected error is left to the caller (it becomes a logged 500)', () => {
  assert.equal(errorToAnswer(new Error('something else broke')), undefined)
})
