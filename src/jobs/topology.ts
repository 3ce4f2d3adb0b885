/**
 * Broker names, all derived from one prefix so several deployments (or test runs) share a
 * RabbitMQ without meeting. Pure: amqp-topology.ts declares them.
 */
import {JOB_KINDS, type JobKind} from './job-kinds.js'

export interface Topology {
  prefix: string
  /** Topic exchange for events: upload.completed, artifact.created, job.<status>. */
  eventsExchange: string
  /** Topic exchange for work: routing key `<kind>` (new) or `<kind>.<delay>ms` (a retry coming back). */
  workExchange: string
  /** Topic exchange in front of the delay queues: routing key `<kind>.<delay>ms`. */
  retryExchange: string
  /** Direct exchange in front of the dead-letter queues: routing key `<kind>`. */
  deadExchange: string
  workQueue(kind: JobKind): string
  deadQueue(kind: JobKind): string
  delayQueue(delayMs: number): string
  retryRoutingKey(kind: JobKind, delayMs: number): string
  retryDelays: readonly number[]
  /** Deliveries of one message (crashes included) before the broker dead-letters it. */
  deliveryLimit: number
  kinds: readonly JobKind[]
}

export const TOPOLOGY_PREFIX = /^[a-z][a-z0-9_.-]{0,40}$/

export function topology(prefix: string, retryDelays: readonly number[], deliveryLimit: number): Topology {
  if (!TOPOLOGY_PREFIX.test(prefix)) throw new Error('queue prefix must be lower-case letters, digits, ".", "_" or "-"')
  return {
    prefix,
    eventsExchange: `${prefix}.events`,
    workExchange: `${prefix}.work`,
    retryExchange: `${prefix}.retry`,
    deadExchange: `${prefix}.dead`,
    workQueue: (kind) => `${prefix}.${kind}`,
    deadQueue: (kind) => `${prefix}.${kind}.dead`,
    delayQueue: (delayMs) => `${prefix}.retry.${delayMs}ms`,
    retryRoutingKey: (kind, delayMs) => `${kind}.${delayMs}ms`,
    retryDelays: [...new Set(retryDelays)],
    deliveryLimit,
    kinds: JOB_KINDS,
  }
}
