import assert from 'node:assert/strict'
import {test} from 'node:test'
import {canTransition, decideStart, isFinished, PENDING_STATUSES} from './job-status.js'
import {parseJobMessage} from './messages.js'
import {JOB_POLICIES, resolvePolicies, retryDelays} from './job-policies.js'
import {Outcome, outcomeOfError, UnrecoverableError} from './outcome.js'
import {settlementOf} from './runner.js'
import {topology} from './topology.js'

test('retry delays double from the base, one per retry a job can have', () => {
  assert.deepEqual(retryDelays(1000, 5), [1000, 2000, 4000, 8000])
  assert.deepEqual(retryDelays(1000, 1), [1000])
})

test('policies are resolved once from config: overrides per kind, and one ladder for the longest budget', () => {
  const policies = resolvePolicies({jobPrefetch: {snapshot: 7}, jobMaxAttempts: 3, jobRetryDelay: 100})
  assert.equal(policies.kinds.snapshot.concurrency, 7)
  assert.equal(policies.kinds.transcode.concurrency, JOB_POLICIES.transcode.concurrency)
  assert.deepEqual(Object.values(policies.kinds).map((p) => p.attempts), [3, 3, 3, 3])
  assert.deepEqual(policies.retryDelays, [100, 200])
  assert.deepEqual(resolvePolicies({jobPrefetch: {}, jobRetryDelay: 1000}).retryDelays.length, JOB_POLICIES.webhook.attempts - 1)
})

test('the runner alone settles an outcome: ack, retry after the rung for its attempt, or dead once attempts run out', () => {
  const ladder = [100, 200, 400]
  const policy = {attempts: 3}
  assert.deepEqual(settlementOf(Outcome.succeeded(), 1, policy, ladder), {action: 'ack'})
  assert.deepEqual(settlementOf(Outcome.retry('busy'), 1, policy, ladder), {action: 'retry', reason: 'busy', delayMs: 100})
  assert.deepEqual(settlementOf(Outcome.retry('busy'), 2, policy, ladder), {action: 'retry', reason: 'busy', delayMs: 200})
  assert.deepEqual(settlementOf(Outcome.retry('busy'), 3, policy, ladder), {action: 'dead', reason: 'gave up after 3 attempts: busy'})
  assert.deepEqual(settlementOf(Outcome.retry('busy'), 5, {attempts: 9}, ladder), {action: 'retry', reason: 'busy', delayMs: 400}, 'past the ladder: its last rung')
  assert.deepEqual(settlementOf(Outcome.dead('not a video'), 1, policy, ladder), {action: 'dead', reason: 'not a video'})
})

test('an UnrecoverableError means dead, any other error means retry', () => {
  assert.deepEqual(outcomeOfError(new UnrecoverableError('bad input')), Outcome.dead('bad input'))
  assert.deepEqual(outcomeOfError(new Error('ECONNRESET')), Outcome.retry('ECONNRESET'))
  assert.ok(new UnrecoverableError('x') instanceof UnrecoverableError)
})

test('job messages are validated and a malformed one says why', () => {
  const good = Buffer.from(JSON.stringify({schemaVersion: 1, kind: 'snapshot', uploadId: 'u1'}))
  assert.deepEqual(parseJobMessage(good, 'snapshot'), {ok: true, message: {schemaVersion: 1, kind: 'snapshot', uploadId: 'u1'}})
  assert.deepEqual(parseJobMessage(Buffer.from('{'), 'snapshot'), {ok: false, reason: 'body is not JSON'})
  assert.deepEqual(parseJobMessage(good, 'transcode'), {ok: false, reason: 'a snapshot job on the transcode queue'})
  const noId = parseJobMessage(Buffer.from(JSON.stringify({schemaVersion: 1, kind: 'snapshot'})), 'snapshot')
  assert.equal(noId.ok, false)
  assert.match((noId as {reason: string}).reason, /^invalid uploadId/)
})

test('finished jobs never run again unless the kind reruns; a died worker\'s job can be taken over', () => {
  assert.ok(isFinished('succeeded') && isFinished('dead'))
  assert.ok(canTransition('running', 'running'))
  assert.ok(!canTransition('succeeded', 'running'))
  assert.ok(canTransition('succeeded', 'running', {rerun: true}) && canTransition('dead', 'running', {rerun: true}))
  assert.ok(!canTransition('succeeded', 'queued', {rerun: true}))
  assert.deepEqual([...PENDING_STATUSES].sort(), ['failed', 'queued', 'running'])
})

test('a first delivery for a running job is a duplicate; only a redelivery takes it over', () => {
  const first = {redelivery: false}
  const again = {redelivery: true}
  const once = {rerun: false}
  const rerun = {rerun: true}
  const table = (['queued', 'failed', 'running', 'succeeded', 'dead'] as const).map((status) => [
    status,
    decideStart(status, first, once),
    decideStart(status, again, once),
    decideStart(status, first, rerun),
    decideStart(status, again, rerun),
  ])
  assert.deepEqual(table, [
    // status      first, once   again, once   first, rerun  again, rerun
    ['queued', 'start', 'start', 'start', 'start'],
    ['failed', 'start', 'start', 'start', 'start'],
    ['running', 'duplicate', 'take-over', 'owe-rerun', 'take-over'],
    ['succeeded', 'duplicate', 'duplicate', 'rerun', 'rerun'],
    ['dead', 'duplicate', 'duplicate', 'rerun', 'rerun'],
  ])
})

test('fanout and webhook rerun on new work (artifacts, events); transcode and snapshot run once per upload', () => {
  assert.deepEqual(
    Object.entries(JOB_POLICIES)
      .filter(([, policy]) => policy.rerun)
      .map(([kind]) => kind),
    ['fanout', 'webhook']
  )
})

test('every broker name derives from the prefix', () => {
  const t = topology('ingest', [500, 1000], 10)
  assert.equal(t.workQueue('transcode'), 'ingest.transcode')
  assert.equal(t.deadQueue('fanout'), 'ingest.fanout.dead')
  assert.equal(t.delayQueue(500), 'ingest.retry.500ms')
  assert.equal(t.retryRoutingKey('snapshot', 1000), 'snapshot.1000ms')
  assert.throws(() => topology('Bad Prefix', [1], 1), /queue prefix/)
})
