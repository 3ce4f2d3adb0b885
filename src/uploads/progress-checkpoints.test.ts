import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {CheckpointBatcher, ProgressCheckpoints, type CheckpointProgress} from './progress-checkpoints.js'

const fail = (error: unknown) => assert.fail(String(error))
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('checkpoint batches', () => {
  it('record every request with unsaved bytes in one call per tick, and none that has nothing new', async () => {
    const batches: CheckpointProgress[][] = []
    const batcher = new CheckpointBatcher({intervalMs: 40, bytes: 1 << 30}, async (batch) => {
      batches.push([...batch])
      return new Set(batch.map((c) => c.id))
    })
    const requests = Array.from({length: 200}, (_, i) => new ProgressCheckpoints(batcher, {progress: () => ({id: `u${i}`, bytesReceived: i, expiresAt: null}), landed: () => {}, onError: fail}))
    for (const [i, r] of requests.entries()) if (i % 2 === 0) r.update(new Uint8Array(10))
    await pause(70)
    assert.equal(batches.length, 1)
    assert.equal(batches[0]!.length, 100)
    await pause(50)
    assert.equal(batches.length, 1, 'nothing new, no statement')
    await Promise.all(requests.map((r) => r.stop()))
  })

  it('never has two batches in flight, and a request passing its byte threshold is recorded right after the one in flight', async () => {
    let inFlight = 0
    let most = 0
    const batches: string[][] = []
    const batcher = new CheckpointBatcher({intervalMs: 10, bytes: 100}, async (batch) => {
      most = Math.max(most, ++inFlight)
      await pause(60)
      inFlight--
      batches.push(batch.map((c) => c.id))
      return new Set(batch.map((c) => c.id))
    })
    const a = new ProgressCheckpoints(batcher, {progress: () => ({id: 'a', bytesReceived: 1, expiresAt: null}), landed: () => {}, onError: fail})
    const b = new ProgressCheckpoints(batcher, {progress: () => ({id: 'b', bytesReceived: 1, expiresAt: null}), landed: () => {}, onError: fail})
    a.update(new Uint8Array(200))
    await pause(5)
    b.update(new Uint8Array(200))
    await pause(200)
    await Promise.all([a.stop(), b.stop()])
    assert.equal(most, 1)
    assert.deepEqual(batches.slice(0, 2), [['a'], ['b']])
  })

  it('tells a request whose upload is no longer receiving, and waits for its batch when it stops', async () => {
    let landed = false
    const gone: string[] = []
    const batcher = new CheckpointBatcher({intervalMs: 10, bytes: 1 << 30}, async () => {
      await pause(50)
      landed = true
      return new Set(['kept'])
    })
    const kept = new ProgressCheckpoints(batcher, {progress: () => ({id: 'kept', bytesReceived: 1, expiresAt: null}), landed: (r) => void (r || gone.push('kept')), onError: fail})
    const lost = new ProgressCheckpoints(batcher, {progress: () => ({id: 'lost', bytesReceived: 1, expiresAt: null}), landed: (r) => void (r || gone.push('lost')), onError: fail})
    kept.update(new Uint8Array(1))
    lost.update(new Uint8Array(1))
    await pause(25)
    await kept.stop()
    assert.ok(landed, 'stop() resolved only after the batch in flight landed')
    await lost.stop()
    assert.deepEqual(gone, ['lost'])
  })
})
