/**
 * Declares the RabbitMQ topology, idempotently (every node does it at start-up, and again after
 * each reconnect):
 *
 *   <p>.work (topic) --<kind>.#--> <p>.<kind> (quorum, delivery limit, DLX <p>.dead)
 *   <p>.retry (topic) --*.<d>ms--> <p>.retry.<d>ms (TTL d, DLX <p>.work) --> back to <p>.<kind>
 *   <p>.dead (direct) --<kind>--> <p>.<kind>.dead (quorum)
 *   <p>.events (topic): upload.completed, artifact.created, job.<status>
 */
import type {Channel} from 'amqplib'
import type {Topology} from './topology.js'

export async function declareTopology(channel: Channel, t: Topology): Promise<void> {
  await channel.assertExchange(t.eventsExchange, 'topic', {durable: true})
  await channel.assertExchange(t.workExchange, 'topic', {durable: true})
  await channel.assertExchange(t.retryExchange, 'topic', {durable: true})
  await channel.assertExchange(t.deadExchange, 'direct', {durable: true})
  for (const kind of t.kinds) {
    await channel.assertQueue(t.workQueue(kind), {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-delivery-limit': t.deliveryLimit,
        'x-dead-letter-exchange': t.deadExchange,
        'x-dead-letter-routing-key': kind,
      },
    })
    await channel.bindQueue(t.workQueue(kind), t.workExchange, `${kind}.#`)
    await channel.assertQueue(t.deadQueue(kind), {durable: true, arguments: {'x-queue-type': 'quorum'}})
    await channel.bindQueue(t.deadQueue(kind), t.deadExchange, kind)
  }
  for (const delay of t.retryDelays) {
    // Classic queues: every message in one has the same TTL, so they expire in order.
    await channel.assertQueue(t.delayQueue(delay), {
      durable: true,
      arguments: {'x-message-ttl': delay, 'x-dead-letter-exchange': t.workExchange},
    })
    await channel.bindQueue(t.delayQueue(delay), t.retryExchange, `*.${delay}ms`)
  }
}
