/**
 * The admin API with the in-process broker (the embedded default's pipeline): disabled without
 * ADMIN_TOKEN, and its dead letters listed and replayed through the same commands.
 */
import assert from 'node:assert/strict'
import {after, describe, test} from 'node:test'
import {JobRepository} from '../src/jobs/job-repository.js'
import {Outcome, UnrecoverableError} from '../src/jobs/outcome.js'
import {JobRegistry} from '../src/jobs/registry.js'
import {cliFor, startAdminNode, type AdminTestNode} from './support/admin-support.js'
import {completedUpload, randomId, waitFor} from './support/pipeline-support.js'
import {request} from './support/http.js'

describe('the admin API with the in-process broker', {timeout: 120_000}, () => {
  const nodes: AdminTestNode[] = []
  after(async () => {
    for (const node of nodes) await node.stop()
  })

  test('without ADMIN_TOKEN the admin API answers 403 to everything and the CLI exits 4', async () => {
    const node = await startAdminNode(new JobRegistry(), {broker: 'memory', adminToken: null})
    nodes.push(node)
    for (const path of ['/admin/jobs', '/admin/nodes', '/admin/anything']) {
      const res = await request('GET', `${node.url}${path}`, {headers: {Authorization: 'Bearer whatever-token-1234567'}})
      assert.equal(res.status, 403)
      assert.match(res.body, /the admin API is disabled on this node: set ADMIN_TOKEN/)
    }
    const result = await cliFor(node, 'whatever-token-1234567')('jobs', 'ls')
    assert.equal(result.code, 4)
    assert.match(result.stderr, /admin API is disabled/)
    // The users' API is unaffected.
    assert.equal((await request('GET', `${node.url}/healthz`)).status, 200)
  })

  test('a dead job is in the in-process dead-letter list, replayed after the fix, and succeeds', async () => {
    const broken = new Set<string>()
    const registry = new JobRegistry().register('snapshot', async (job) => {
      if (broken.has(job.uploadId)) throw new UnrecoverableError('the poster frame cannot be decoded')
      return Outcome.succeeded()
    })
    const node = await startAdminNode(registry, {broker: 'memory'})
    nodes.push(node)
    const cli = cliFor(node)
    const jobs = new JobRepository(node.db)
    const id = randomId()
    broken.add(id)
    await completedUpload(node.db, id)
    await waitFor('the snapshot job to be dead', async () => (await jobs.find(id, 'snapshot'))?.status === 'dead', 20_000)

    const listed = JSON.parse((await cli('dlq', 'ls', '--kind', 'snapshot', '--json')).stdout) as {total: number; letters: Array<{uploadId: string; reason: string; jobStatus: string}>}
    assert.deepEqual(listed.letters.map((l) => [l.uploadId, l.reason, l.jobStatus]), [[id, 'the poster frame cannot be decoded', 'dead']])
    broken.delete(id)
    const replay = await cli('dlq', 'replay', '--kind', 'snapshot')
    assert.equal(replay.code, 0, replay.stderr)
    await waitFor('the snapshot job to succeed', async () => (await jobs.find(id, 'snapshot'))?.status === 'succeeded', 20_000)
    assert.equal((JSON.parse((await cli('dlq', 'ls', '--kind', 'snapshot', '--json')).stdout) as {total: number}).total, 0)
  })
})
