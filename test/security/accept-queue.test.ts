/**
 * A crowd of clients connecting at once while the node is busy waits in the kernel's accept
 * queue instead of being reset: the node listens with a backlog far above Node's default (511),
 * which 1000 uploads starting at once overflowed (clients saw ECONNRESET after ~10 s).
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {after, before, it} from 'node:test'
import {startTestNode, type TestNode} from '../support/node.js'

let node: TestNode
before(async () => {
  node = await startTestNode('embedded')
})
after(() => node?.stop())

it('listens with an accept queue of thousands of connections (as far as net.core.somaxconn allows)', () => {
  const port = new URL(node.url).port
  // For a listening socket, ss shows the backlog in the Send-Q column.
  const line = execFileSync('ss', ['-Hltn', `sport = :${port}`], {encoding: 'utf8'}).trim().split('\n')[0] ?? ''
  const backlog = Number(line.trim().split(/\s+/)[2])
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))
  assert.ok(somaxconn > 511, `this machine caps backlogs at ${somaxconn}: the test needs more than Node's default`)
  assert.equal(backlog, Math.min(somaxconn, 8192), `accept queue of the node's socket (ss: ${line})`)
})
