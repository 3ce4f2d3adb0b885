/**
 * The broker port. Two adapters: RabbitMQ (amqp-broker.ts) for separate processes and machines,
 * and an in-process one (memory-broker.ts) for the embedded default. Both give the runner the
 * same semantics: at-least-once delivery, a prefetch per consumer, a retry after the delay the
 * runner names, a delivery limit, and a dead-letter queue per kind. Neither decides a retry.
 */
import type {JobKind} from './job-kinds.js'
import type {JobMessage} from './messages.js'

/** One message handed to a consumer. Exactly one of the four settles it. */
export interface Delivery {
  readonly body: Buffer
  /**
   * 1 for a first delivery; more after its consumer died or handed it back (not after retries:
   * those are new messages). The runner tells a redelivery (take the job over) from a duplicate by it.
   */
  readonly deliveryCount: number
  ack(): Promise<void>
  /** Schedules the message again after `delayMs` (the runner's choice, a rung of the ladder the broker was built with), then acks. */
  retry(delayMs: number, reason: string): Promise<void>
  /** Moves the message to the kind's dead-letter queue with the reason, then acks. */
  deadLetter(reason: string): Promise<void>
  /** Hands the message back at once (shutdown, or the database is unreachable). */
  requeue(): Promise<void>
}

export type DeliveryHandler = (delivery: Delivery) => Promise<void>

export interface Subscription {
  /** Stops taking new messages; deliveries already handed out can still be settled. */
  cancel(): Promise<void>
}

/** A message in a kind's dead-letter queue, as an operator sees it. */
export interface DeadLetterMessage {
  readonly body: Buffer
  /** Why it was dead-lettered (the runner's reason, or the broker's delivery limit). */
  readonly reason: string | null
  readonly deadAt: Date | null
  /** The node that dead-lettered it, when known. */
  readonly node: string | null
}

/** A dead letter taken for replay: exactly one of the two settles it. */
export interface TakenDeadLetter extends DeadLetterMessage {
  /** Removes it from the dead-letter queue (it was replayed or is obsolete). */
  remove(): Promise<void>
  /** Leaves it in the dead-letter queue. */
  keep(): Promise<void>
}

/** Operators' access to the dead-letter queues (the admin API); the runner never uses it. */
export interface DeadLetterQueues {
  /** Up to `limit` dead letters, oldest first, left in place; and how many there are. */
  peekDeadLetters(kind: JobKind, limit: number): Promise<{total: number; letters: DeadLetterMessage[]}>
  /** Takes up to `limit` dead letters; `done()` keeps any not settled. */
  takeDeadLetters(kind: JobKind, limit: number): Promise<{letters: TakenDeadLetter[]; done(): Promise<void>}>
  /** Removes every dead letter of a kind; how many there were. */
  purgeDeadLetters(kind: JobKind): Promise<number>
}

export interface Broker extends DeadLetterQueues {
  readonly name: 'amqp' | 'memory'
  start(): Promise<void>
  /** Resolves once the broker has the event (publisher confirm); rejects with BrokerUnavailable. */
  publishEvent(topic: string, event: object): Promise<void>
  publishJob(job: JobMessage): Promise<void>
  consume(kind: JobKind, prefetch: number, handler: DeliveryHandler): Promise<Subscription>
  close(): Promise<void>
}

/** The broker cannot take messages right now (down, unreachable, connection lost); try later. */
export class BrokerUnavailable extends Error {
  override name = 'BrokerUnavailable'
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

export function encode(message: object): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8')
}
