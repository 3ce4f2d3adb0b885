/**
 * The in-process broker for the embedded default (no RabbitMQ). Same semantics as the RabbitMQ
 * adapter: prefetch, retries after growing delays, a delivery limit, a dead-letter list per
 * kind. It keeps nothing on disk: the jobs table is the durable record, and the node queues
 * pending jobs again at start-up (see pipeline.ts).
 */
import type {Broker, DeadLetterMessage, Delivery, DeliveryHandler, Subscription, TakenDeadLetter} from './broker.js'
import {BrokerUnavailable, encode} from './broker.js'
import {JOB_KINDS, type JobKind} from './job-kinds.js'
import type {JobMessage} from './messages.js'

interface Envelope {
  body: Buffer
  /** Deliveries so far: 1 on its first, more after a hand-back (as RabbitMQ counts). */
  deliveryCount: number
}

export interface DeadLetter {
  body: Buffer
  reason: string
  at: Date
}

interface Consumer {
  prefetch: number
  handler: DeliveryHandler
  inFlight: number
  active: boolean
}

type EventListener = (topic: string, event: object) => void

export class MemoryBroker implements Broker {
  readonly name = 'memory'
  private readonly ready = new Map<JobKind, Envelope[]>(JOB_KINDS.map((k) => [k, []]))
  private readonly consumers = new Map<JobKind, Consumer>()
  private readonly dead = new Map<JobKind, DeadLetter[]>(JOB_KINDS.map((k) => [k, []]))
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly listeners = new Set<EventListener>()
  private closed = false

  constructor(private readonly options: {deliveryLimit: number}) {}

  async start(): Promise<void> {}

  async publishEvent(topic: string, event: object): Promise<void> {
    this.ensureOpen()
    for (const listener of this.listeners) queueMicrotask(() => listener(topic, event))
  }

  async publishJob(job: JobMessage): Promise<void> {
    this.ensureOpen()
    this.enqueue(job.kind, {body: encode(job), deliveryCount: 0})
  }

  /**
   * Queues a message that an earlier run of this process may have delivered already (its jobs
   * table says the work is owed): it arrives as a redelivery, so a job left running by the
   * process that died is taken over rather than taken for a duplicate.
   */
  redeliver(job: JobMessage): void {
    this.ensureOpen()
    this.enqueue(job.kind, {body: encode(job), deliveryCount: 1})
  }

  /** Puts raw bytes on a kind's queue, as a foreign or broken publisher would. */
  inject(kind: JobKind, body: Buffer): void {
    this.enqueue(kind, {body, deliveryCount: 0})
  }

  /** Hears every published event (tests, and observers in the same process). */
  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  deadLetters(kind: JobKind): readonly DeadLetter[] {
    return this.dead.get(kind)!
  }

  async peekDeadLetters(kind: JobKind, limit: number): Promise<{total: number; letters: DeadLetterMessage[]}> {
    const dead = this.dead.get(kind)!
    return {total: dead.length, letters: dead.slice(0, limit).map(asMessage)}
  }

  /** Nothing leaves the list until removed: a replay that fails half-way loses no letter. */
  async takeDeadLetters(kind: JobKind, limit: number): Promise<{letters: TakenDeadLetter[]; done(): Promise<void>}> {
    const dead = this.dead.get(kind)!
    const letters = dead.slice(0, limit).map((letter) => ({
      ...asMessage(letter),
      remove: async () => {
        const index = dead.indexOf(letter)
        if (index >= 0) dead.splice(index, 1)
      },
      keep: async () => {},
    }))
    return {letters, done: async () => {}}
  }

  async purgeDeadLetters(kind: JobKind): Promise<number> {
    return this.dead.get(kind)!.splice(0).length
  }

  depth(kind: JobKind): number {
    return this.ready.get(kind)!.length
  }

  async consume(kind: JobKind, prefetch: number, handler: DeliveryHandler): Promise<Subscription> {
    this.ensureOpen()
    if (this.consumers.get(kind)?.active) throw new Error(`the ${kind} queue already has a consumer in this process`)
    const consumer: Consumer = {prefetch: Math.max(1, prefetch), handler, inFlight: 0, active: true}
    this.consumers.set(kind, consumer)
    this.pump(kind)
    return {
      cancel: async () => {
        consumer.active = false
      },
    }
  }

  async close(): Promise<void> {
    this.closed = true
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    for (const consumer of this.consumers.values()) consumer.active = false
  }

  private ensureOpen(): void {
    if (this.closed) throw new BrokerUnavailable('the in-process broker is closed')
  }

  private enqueue(kind: JobKind, envelope: Envelope, front = false): void {
    const queue = this.ready.get(kind)!
    if (front) queue.unshift(envelope)
    else queue.push(envelope)
    this.pump(kind)
  }

  private pump(kind: JobKind): void {
    const consumer = this.consumers.get(kind)
    const queue = this.ready.get(kind)!
    while (consumer?.active && !this.closed && consumer.inFlight < consumer.prefetch && queue.length > 0) {
      const envelope = queue.shift()!
      envelope.deliveryCount++
      consumer.inFlight++
      const delivery = this.delivery(kind, consumer, envelope)
      // Handlers run off the publisher's stack, as they would with a real broker.
      setImmediate(() => void consumer.handler(delivery).catch(() => delivery.requeue()))
    }
  }

  private delivery(kind: JobKind, consumer: Consumer, envelope: Envelope): Delivery {
    let settled = false
    const settle = (action: () => void) => {
      if (settled) return
      settled = true
      consumer.inFlight--
      action()
      this.pump(kind)
    }
    return {
      body: envelope.body,
      deliveryCount: envelope.deliveryCount,
      ack: async () => settle(() => {}),
      retry: async (delayMs, _reason) =>
        settle(() => {
          const timer = setTimeout(() => {
            this.timers.delete(timer)
            this.enqueue(kind, {body: envelope.body, deliveryCount: 0})
          }, delayMs)
          this.timers.add(timer)
        }),
      deadLetter: async (reason) => settle(() => this.dead.get(kind)!.push({body: envelope.body, reason, at: new Date()})),
      requeue: async () =>
        settle(() => {
          if (envelope.deliveryCount >= this.options.deliveryLimit) {
            this.dead.get(kind)!.push({body: envelope.body, reason: `delivery limit of ${this.options.deliveryLimit} reached`, at: new Date()})
          } else {
            this.ready.get(kind)!.unshift(envelope)
          }
        }),
    }
  }
}

function asMessage(letter: DeadLetter): DeadLetterMessage {
  return {body: letter.body, reason: letter.reason, deadAt: letter.at, node: null}
}
