import assert from 'node:assert/strict'
import {test} from 'node:test'
import type {UploadRecord} from '../db/entities/upload.js'
import {UploadIdentities} from './upload-identities.js'

const row = (id: string, owner: string | null = 'alice'): UploadRecord => ({id, owner, nodeId: 'node-a', uploadConcat: null} as UploadRecord)

test('reads an upload once, then answers from memory; a missing upload is read each time', async () => {
  const reads: string[] = []
  const identities = new UploadIdentities(async (id) => (reads.push(id), id === 'missing' ? null : row(id)))
  assert.deepEqual(await identities.of('u1'), {id: 'u1', owner: 'alice', nodeId: 'node-a', uploadConcat: null})
  await identities.of('u1')
  assert.equal(await identities.of('missing'), null)
  assert.equal(await identities.of('missing'), null)
  assert.deepEqual(reads, ['u1', 'missing', 'missing'])
})

test('a remembered row is never read; past its capacity the least recently asked-for upload is forgotten', async () => {
  const reads: string[] = []
  const identities = new UploadIdentities(async (id) => (reads.push(id), row(id)), 2)
  identities.remember(row('a'))
  identities.remember(row('b'))
  await identities.of('a') // b is now the least recently asked for
  identities.remember(row('c'))
  await identities.of('a')
  await identities.of('c')
  assert.deepEqual(reads, [])
  await identities.of('b')
  assert.deepEqual(reads, ['b'])
})
