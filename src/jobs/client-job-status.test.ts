/** Issue 17, point 9: what the status API says of a job awaiting a retry. */
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {jobView} from '../http/routes/uploads.js'
import type {JobWithHistory} from './job-repository.js'
import {JOB_STATUSES} from './job-status.js'

const job = (status: JobWithHistory['status']) => ({kind: 'snapshot', status, attempts: 2, progress: 0, lastError: 'storage hiccup', workerNode: null, startedAt: null, finishedAt: null, history: []}) as unknown as JobWithHistory

test('a job awaiting a retry is shown as retrying; failed is never shown, dead is the final failure', () => {
  assert.deepEqual(
    JOB_STATUSES.map((s) => [s, jobView(job(s)).status]),
    [['queued', 'queued'], ['running', 'running'], ['succeeded', 'succeeded'], ['failed', 'retrying'], ['dead', 'dead']]
  )
})
