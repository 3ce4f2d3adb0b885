/**
 * The RabbitMQ adapter. One connection, recovered by amqplib after a loss; on every (re)connect
 * it declares the topology, opens a confirm channel for publishing and one channel per consumer
 * (each with its kind's prefetch). Publishing while disconnected fails at once with
 * BrokerUnavailable, so callers (the outbox relay) back off instead of piling up.
 */
import amqp, {type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type GetMessage, type Message, type Options, type RecoveringChannelModel} from 'amqplib'
import type {Logger} from 'pino'
import {BrokerUnavailable, encode, type Broker, type DeadLetterMessage, type Delivery, type DeliveryHandler, type Subscription, type TakenDeadLetter} from './broker.js'
import {declareTopology} from './amqp-topology.js'
import type {JobKind} from './job-kinds.js'
import type {JobMessage} from './messages.js'
import type {Topology} from './topology.js'

const CONFIRM_TIMEOUT_MS = 10_000
const REASON_MAX = 1000

interface Consumer {
  kind: JobKind
  prefetch: number
  handler: DeliveryHandler
  active: boolean
  channel?: Channel
  tag?: string
}

export interface AmqpBrokerOptions {
  url: string
  topology: Topology
  nodeId: string
  log: Logger
}

export class AmqpBroker implements Broker {
  readonly name = 'amqp'
  private connection?: RecoveringChannelModel
  private model?: ChannelModel
  private publisher?: ConfirmChannel
  private readonly consumers = new Set<Consumer>()
  private closing = false

  constructor(private readonly options: AmqpBrokerOptions) {}

  get topology(): Topology {
    return this.options.topology
  }

  /** Starts connecting and returns at once: a broker that is down must not stop the node. */
  async start(): Promise<void> {
    const {log} = this.options
    this.connection = await amqp.connect(this.options.url, {
      clientProperties: {connection_name: `video-ingest ${this.options.nodeId}`},
      recovery: {waitForConnect: false, initialDelay: 100, maxDelay: 5000, setup: (model: ChannelModel) => this.setup(model)},
    })
    this.connection.on('connect', () => log.info('connected to RabbitMQ'))
    this.connection.on('disconnect', (error: Error) => {
      this.model = undefined
      this.publisher = undefined
      if (!this.closing) log.warn({err: error}, 'lost the RabbitMQ connection; reconnecting')
    })
    this.connection.on('connect-failed', (error: Error) => log.debug({err: error}, 'could not connect to RabbitMQ; retrying'))
    this.connection.on('error', (error: Error) => log.warn({err: error}, 'RabbitMQ connection error'))
  }

  /** Resolves once connected and the topology is declared (tests and tools wait for it). */
  async connected(): Promise<void> {
    await this.connection?.waitForConnect()
  }

  get isConnected(): boolean {
    return this.publisher !== undefined
  }

  async publishEvent(topic: string, event: object): Promise<void> {
    await this.publish(this.options.topology.eventsExchange, topic, encode(event), {type: topic})
  }

  async publishJob(job: JobMessage): Promise<void> {
    await this.publish(this.options.topology.workExchange, job.kind, encode(job), {type: `job.${job.kind}`})
  }

  async consume(kind: JobKind, prefetch: number, handler: DeliveryHandler): Promise<Subscription> {
    const consumer: Consumer = {kind, prefetch: Math.max(1, prefetch), handler, active: true}
    this.consumers.add(consumer)
    const model = this.model
    if (model) {
      await this.openConsumer(model, consumer).catch((error: unknown) =>
        this.options.log.warn({err: error, kind}, 'could not start consuming; will retry after reconnecting')
      )
    }
    return {
      cancel: async () => {
        consumer.active = false
        this.consumers.delete(consumer)
        if (consumer.channel && consumer.tag) await consumer.channel.cancel(consumer.tag).catch(() => {})
      },
    }
  }

  /**
   * Peeking gets messages without acking them and closes the channel, which returns them in
   * order. (On RabbitMQ 4, whose quorum queues have a default delivery limit, each peek counts
   * as a delivery of the dead letters.)
   */
  async peekDeadLetters(kind: JobKind, limit: number): Promise<{total: number; letters: DeadLetterMessage[]}> {
    return this.withChannel(async (channel) => {
      const queue = this.options.topology.deadQueue(kind)
      const {messageCount} = await channel.checkQueue(queue)
      const letters: DeadLetterMessage[] = []
      for (let message = await nextMessage(channel, queue, limit, 0); message; message = await nextMessage(channel, queue, limit, letters.length)) {
        letters.push(deadLetterOf(message))
      }
      return {total: messageCount, letters}
    })
  }

  async takeDeadLetters(kind: JobKind, limit: number): Promise<{letters: TakenDeadLetter[]; done(): Promise<void>}> {
    const model = this.model
    if (!model) throw new BrokerUnavailable('not connected to RabbitMQ')
    const channel = await model.createChannel()
    channel.on('error', (error: Error) => this.options.log.warn({err: error, kind}, 'RabbitMQ dead-letter channel error'))
    const queue = this.options.topology.deadQueue(kind)
    const letters: TakenDeadLetter[] = []
    try {
      for (let message = await nextMessage(channel, queue, limit, 0); message; message = await nextMessage(channel, queue, limit, letters.length)) {
        const taken = message
        letters.push({...deadLetterOf(taken), remove: async () => channel.ack(taken), keep: async () => channel.nack(taken, false, true)})
      }
    } catch (error) {
      await channel.close().catch(() => {})
      throw error
    }
    // Closing returns whatever was neither removed nor kept.
    return {letters, done: () => channel.close().catch(() => {})}
  }

  async purgeDeadLetters(kind: JobKind): Promise<number> {
    return this.withChannel(async (channel) => (await channel.purgeQueue(this.options.topology.deadQueue(kind))).messageCount)
  }

  async close(): Promise<void> {
    this.closing = true
    for (const consumer of this.consumers) await consumer.channel?.close().catch(() => {})
    await this.connection?.close().catch(() => {})
  }

  /** Runs after every successful (re)connect, before the connection is handed out. */
  private async setup(model: ChannelModel): Promise<void> {
    const publisher = await model.createConfirmChannel()
    publisher.on('error', (error: Error) => this.options.log.warn({err: error}, 'RabbitMQ publishing channel error'))
    publisher.on('close', () => this.channelLost(model, this.publisher === publisher))
    await declareTopology(publisher, this.options.topology)
    for (const consumer of this.consumers) if (consumer.active) await this.openConsumer(model, consumer)
    this.model = model
    this.publisher = publisher
  }

  /** A channel closed under us: the simplest sound recovery is a whole new connection. */
  private channelLost(model: ChannelModel, current: boolean): void {
    if (this.closing || !current) return
    this.publisher = undefined
    model.close().catch(() => {})
  }

  private async openConsumer(model: ChannelModel, consumer: Consumer): Promise<void> {
    const channel = await model.createChannel()
    channel.on('error', (error: Error) => this.options.log.warn({err: error, kind: consumer.kind}, 'RabbitMQ consumer channel error'))
    channel.on('close', () => this.channelLost(model, consumer.channel === channel && consumer.active))
    await channel.prefetch(consumer.prefetch)
    const queue = this.options.topology.workQueue(consumer.kind)
    const {consumerTag} = await channel.consume(queue, (message) => {
      if (!message) return // cancelled by the server (queue deleted): the close handler reconnects
      const delivery = this.delivery(channel, consumer.kind, message)
      consumer.handler(delivery).catch((error: unknown) => {
        this.options.log.error({err: error, kind: consumer.kind}, 'consumer failed; handing the message back')
        return delivery.requeue()
      })
    })
    consumer.channel = channel
    consumer.tag = consumerTag
  }

  private delivery(channel: Channel, kind: JobKind, message: ConsumeMessage): Delivery {
    const {topology, log, nodeId} = this.options
    let settled = false
    const settle = async (action: () => Promise<void> | void) => {
      if (settled) return
      settled = true
      try {
        await action()
      } catch (error) {
        // The channel is gone: the broker will deliver the message again (at least once).
        log.warn({err: error, kind}, 'could not settle a delivery; it will be redelivered')
      }
    }
    const copy = (extra: Record<string, unknown>): Options.Publish => ({
      messageId: message.properties.messageId as string | undefined,
      type: message.properties.type as string | undefined,
      headers: {...extra},
    })
    const publishThenAck = async (exchange: string, key: string, extra: Record<string, unknown>) => {
      try {
        await this.publish(exchange, key, message.content, copy(extra))
      } catch (error) {
        channel.nack(message, false, true)
        throw error
      }
      channel.ack(message)
    }
    return {
      body: message.content,
      deliveryCount: deliveryCountOf(message),
      ack: () => settle(() => channel.ack(message)),
      requeue: () => settle(() => channel.nack(message, false, true)),
      retry: (delayMs, reason) =>
        settle(() =>
          publishThenAck(topology.retryExchange, topology.retryRoutingKey(kind, declaredDelay(topology.retryDelays, delayMs)), {
            'x-retry-reason': reason.slice(0, REASON_MAX),
          })
        ),
      deadLetter: (reason) =>
        settle(() =>
          publishThenAck(topology.deadExchange, kind, {
            'x-dead-reason': reason.slice(0, REASON_MAX),
            'x-dead-node': nodeId,
            'x-dead-at': new Date().toISOString(),
          })
        ),
    }
  }

  private async withChannel<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    const model = this.model
    if (!model) throw new BrokerUnavailable('not connected to RabbitMQ')
    const channel = await model.createChannel()
    channel.on('error', (error: Error) => this.options.log.warn({err: error}, 'RabbitMQ admin channel error'))
    try {
      return await work(channel)
    } finally {
      await channel.close().catch(() => {})
    }
  }

  private publish(exchange: string, routingKey: string, body: Buffer, options: Options.Publish): Promise<void> {
    const channel = this.publisher
    if (!channel) return Promise.reject(new BrokerUnavailable('not connected to RabbitMQ'))
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BrokerUnavailable('RabbitMQ did not confirm a message in time')), CONFIRM_TIMEOUT_MS)
      try {
        channel.publish(exchange, routingKey, body, {persistent: true, contentType: 'application/json', timestamp: Date.now(), ...options}, (error) => {
          clearTimeout(timer)
          if (error) reject(new BrokerUnavailable('RabbitMQ refused a message', {cause: error}))
          else resolve()
        })
      } catch (error) {
        clearTimeout(timer)
        reject(new BrokerUnavailable('could not publish to RabbitMQ', {cause: error}))
      }
    })
  }
}

/**
 * Quorum queues count earlier deliveries in x-delivery-count (RabbitMQ 3.x: every return, from a
 * nack or a consumer that went away); RabbitMQ 4 counts only failed ones there and every
 * acquisition in x-acquired-count; the redelivered flag says "delivered before" on any queue.
 */
/**
 * The delay queue a retry goes through: the runner names a rung of the ladder this topology was
 * declared from; any other delay takes the longest declared one not above it (the shortest if
 * none is), so a retry is never published where no queue is bound.
 */
function declaredDelay(declared: readonly number[], delayMs: number): number {
  const fitting = declared.filter((d) => d <= delayMs)
  return fitting.length > 0 ? Math.max(...fitting) : Math.min(...declared)
}

function deliveryCountOf(message: ConsumeMessage): number {
  const headers = message.properties.headers ?? {}
  const before = Math.max(Number(headers['x-delivery-count'] ?? 0) || 0, Number(headers['x-acquired-count'] ?? 0) || 0, message.fields.redelivered ? 1 : 0)
  return before + 1
}

function nextMessage(channel: Channel, queue: string, limit: number, taken: number): Promise<GetMessage | false> {
  return taken >= limit ? Promise.resolve(false) : channel.get(queue, {noAck: false})
}

/** Our dead letters carry x-dead-* headers; those RabbitMQ dead-lettered itself (delivery limit) carry x-death. */
function deadLetterOf(message: Message): DeadLetterMessage {
  const headers = message.properties.headers ?? {}
  const death = (headers['x-death'] as Array<{reason?: string}> | undefined)?.[0]
  const at = headers['x-dead-at'] as string | undefined
  const timestamp = message.properties.timestamp as number | undefined
  return {
    body: message.content,
    reason: (headers['x-dead-reason'] as string | undefined) ?? (death?.reason ? `dead-lettered by RabbitMQ: ${death.reason}` : null),
    deadAt: at ? new Date(at) : timestamp ? new Date(timestamp) : null,
    node: (headers['x-dead-node'] as string | undefined) ?? null,
  }
}
