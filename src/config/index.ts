/**
 * Configuration: one zod schema, defaults from config/default.json, overrides from the
 * environment. Validated once at start; everything after it is typed. No other module reads
 * process.env.
 */
import {readFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import ms from 'ms'
import {z} from 'zod'
import {JOB_KINDS} from '../jobs/job-kinds.js'
import {TOPOLOGY_PREFIX} from '../jobs/topology.js'

const UNITS: Record<string, number> = {b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40}

/** "1048576", "500MB" (decimal) or "20GiB" (binary) to a byte count; NaN when malformed. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text)
  if (!match) return Number.NaN
  return Math.round(Number(match[1]) * UNITS[(match[2] ?? 'b').toLowerCase()]!)
}

const size = z
  .union([z.number().int().nonnegative(), z.string()])
  .transform((value, ctx) => {
    const parsed = typeof value === 'number' ? value : parseSize(value)
    if (!Number.isSafeInteger(parsed) || parsed < 0) {
      ctx.addIssue({code: 'custom', message: 'expected a size such as 1048576, 500MB or 20GiB'})
      return z.NEVER
    }
    return parsed
  })

const duration = z
  .union([z.number().int().nonnegative(), z.string()])
  .transform((value, ctx) => {
    const parsed = typeof value === 'number' ? value : ms(value as ms.StringValue)
    if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0) {
      ctx.addIssue({code: 'custom', message: 'expected a duration such as 30s, 5m or 24h (or milliseconds)'})
      return z.NEVER
    }
    return parsed
  })

const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0'])]).transform((v) => v === true || v === 'true' || v === '1')

const optionalString = z
  .string()
  .nullish()
  .transform((v) => (v === '' || v == null ? undefined : v))

const url = (protocols: string[]) =>
  optionalString.refine(
    (v) => {
      if (v === undefined) return true
      try {
        return protocols.includes(new URL(v).protocol)
      } catch {
        return false
      }
    },
    {message: `expected a URL (${protocols.join(' or ')})`}
  )

/** One rung of the HLS ladder: its short side in pixels and its target bitrates. */
const rendition = z.object({
  name: z.string().regex(/^[a-z0-9_-]{1,32}$/),
  height: z.number().int().min(16).max(4320),
  videoBitrate: z.string().regex(/^\d+k$/),
  audioBitrate: z.string().regex(/^\d+k$/),
})
export type RenditionConfig = z.infer<typeof rendition>

const jsonArray = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => (typeof v === 'string' ? JSON.parse(v) : v), z.array(item).min(1))

export const configSchema = z.object({
  host: z.string().min(1),
  port: z.coerce.number().int().min(0).max(65535),
  dataDir: z.string().min(1),
  databaseUrl: url(['postgres:', 'postgresql:']),
  /** Schema to use inside the database (tests give each run its own). */
  databaseSchema: optionalString,
  publicUrl: url(['http:', 'https:']),
  trustProxy: bool,
  nodeId: optionalString,
  maxUploadSize: size,
  uploadExpiry: duration,
  expirySweepInterval: duration,
  /** A request body silent this long is ended, what reached the file kept; 0: never. */
  uploadIdleTimeout: duration,
  /** The most partial uploads one final upload (tus concatenation) may list. */
  maxConcatParts: z.coerce.number().int().min(1).max(1000),
  corsOrigins: z.string(),
  authJwtSecret: optionalString,
  authJwksUrl: url(['http:', 'https:']),
  authIssuer: optionalString,
  authAudience: optionalString,
  /** Accept bearer JWTs without `exp` (valid forever once issued); off by default. */
  authAllowNoExpiry: bool,
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  shutdownTimeout: duration,
  /** Limits per caller (JWT subject, else client address); 0 turns one off (uploads/caller-limits.ts). */
  quotaUploadsInFlight: z.coerce.number().int().min(0),
  quotaBytesInFlight: size,
  rateLimitCreations: z.coerce.number().int().min(0),
  sseMaxPerSubject: z.coerce.number().int().min(0),
  /** How often event streams look for changes while the node's change listener is down (uploads/upload-changes.ts), and how often they send a heartbeat. */
  eventsPollInterval: duration,
  eventsHeartbeatInterval: duration,
  /** The address peers use to reach this node (default: http://HOST:PORT). */
  nodeUrl: url(['http:', 'https:']),
  /** Shared by the nodes of a cluster to sign requests to each other (HMAC-SHA256). */
  clusterSecret: optionalString,
  nodeHeartbeatInterval: duration,
  /** A node that has not beaten for this long is out of the live set. */
  nodeTtl: duration,
  /** A request to a peer (a copy, a probe, a forwarded media read) whose connection moves no byte this long is given up: a frozen or cut-off peer cannot hold a job forever. */
  peerIdleTimeout: duration,
  /** Copies of each artifact beyond the one that made it; 0: every live node. */
  replicationFactor: z.coerce.number().int().min(0).max(100),
  /** A large artifact travels along a chain of the peers that lack it (sent once), else to each peer directly. */
  replicationChain: bool,
  /** How often each node checks that the artifacts it holds have reached their peers. */
  replicationReconcileInterval: duration,
  /** Bearer token for the admin API (/admin, the `ingest` CLI); unset: the admin API is disabled. */
  adminToken: optionalString.refine((v) => v === undefined || v.length >= 16, {message: 'expected at least 16 characters'}),
  /** RabbitMQ; unset runs the in-process broker (embedded default: one process does everything). */
  amqpUrl: url(['amqp:', 'amqps:']),
  /** Every exchange and queue name starts with this (tests and deployments sharing a broker differ). */
  queuePrefix: z.string().regex(TOPOLOGY_PREFIX),
  /** Per-kind prefetch, e.g. {"transcode":1}; kinds left out use their JOB_POLICIES default (jobs/job-policies.ts). */
  jobPrefetch: z.preprocess((v) => (typeof v === 'string' ? JSON.parse(v) : v), z.partialRecord(z.enum(JOB_KINDS), z.number().int().min(1).max(256))),
  /** Attempts before a job is dead, for every kind; unset uses each kind's own (jobs/job-policies.ts). */
  jobMaxAttempts: z.coerce.number().int().min(1).max(50).optional(),
  /** Delay before the first retry; each later one doubles. */
  jobRetryDelay: duration,
  /** Deliveries of one message (crashes included) before the broker dead-letters it. */
  jobDeliveryLimit: z.coerce.number().int().min(1).max(1000),
  /** How often the outbox relay looks for events when nothing woke it. */
  outboxPollInterval: duration,
  /** HLS ladder, highest first; never upscaled (see media/rendition-ladder.ts). */
  renditions: jsonArray(rendition),
  /** x264 preset: veryfast in production, ultrafast in tests and benchmarks. */
  x264Preset: z.enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow']),
  /** Longest a single ffmpeg run may take before its process tree is killed. */
  ffmpegTimeout: duration,
  /** Longest one ffprobe reading of a file may take (a header, not a decode). */
  mediaProbeTimeout: duration,
  /** Inputs whose header declares more are refused (early, while they arrive, when it is at the front); unset or "off": no limit. */
  mediaMaxDuration: z.preprocess((v) => (v === '' || v === 'off' ? null : v), duration.nullish()).transform((v) => v || undefined),
  thumbnailCount: z.coerce.number().int().min(0).max(100),
  /** Niceness of ffmpeg and ffprobe (0..19), so uploads keep their speed while media jobs run. */
  mediaNice: z.coerce.number().int().min(0).max(19),
  /** Explicit ffmpeg/ffprobe binaries; unset: the first on `searchPath`, else the npm-shipped builds. */
  ffmpegPath: optionalString,
  ffprobePath: optionalString,
  /** Where to look for ffmpeg/ffprobe (the process's PATH). */
  searchPath: z.string().default(''),
  /** When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`; unset, keep /metrics off the public listener. */
  metricsToken: optionalString,
  /** How often the retention job runs (one node at a time); 0: never. */
  retentionInterval: duration,
  /** Expired or terminated uploads' rows are deleted this long after they ended. */
  expiredUploadGrace: duration,
  /** Published events (outbox rows, delivered webhooks) are deleted this long after they were published. */
  eventRetention: duration,
  /** Completed originals are deleted this long after completion once their artifacts exist; unset or "off": kept. */
  originalRetention: z.preprocess((v) => (v === '' || v === 'off' ? null : v), duration.nullish()).transform((v) => v ?? undefined),
  /** Where upload.completed, upload.ready, upload.failed and job.dead are POSTed (webhooks/); unset: no webhooks. */
  webhookUrl: url(['http:', 'https:']),
  /** Standard Webhooks signing secret, `whsec_<base64>` (or the base64 alone); needed with webhookUrl. */
  webhookSecret: optionalString,
  /** One delivery's longest wait for an answer. */
  webhookTimeout: duration,
  /** Allow a webhook URL that resolves to this machine or to link-local addresses (tests, a receiver beside the node). */
  webhookAllowPrivate: bool,
  /** When set, /media needs `?token=` (an HS256 JWT for the upload, media/media-tokens.ts); unset: /media is public. */
  mediaSigningSecret: optionalString,
  /** How long a signed media URL holds. */
  mediaUrlTtl: duration,
})

export type Config = z.infer<typeof configSchema> & {nodeId: string}

/** Environment variable for each key (the names operators know). */
const ENV_NAMES: Record<keyof z.input<typeof configSchema>, string> = {
  host: 'HOST',
  port: 'PORT',
  dataDir: 'DATA_DIR',
  databaseUrl: 'DATABASE_URL',
  databaseSchema: 'DATABASE_SCHEMA',
  publicUrl: 'PUBLIC_URL',
  trustProxy: 'TRUST_PROXY',
  nodeId: 'NODE_ID',
  maxUploadSize: 'MAX_UPLOAD_SIZE',
  uploadExpiry: 'UPLOAD_EXPIRY',
  expirySweepInterval: 'EXPIRY_SWEEP_INTERVAL',
  uploadIdleTimeout: 'UPLOAD_IDLE_TIMEOUT',
  maxConcatParts: 'MAX_CONCAT_PARTS',
  corsOrigins: 'CORS_ORIGINS',
  authJwtSecret: 'AUTH_JWT_SECRET',
  authJwksUrl: 'AUTH_JWKS_URL',
  authIssuer: 'AUTH_ISSUER',
  authAudience: 'AUTH_AUDIENCE',
  authAllowNoExpiry: 'AUTH_ALLOW_NO_EXPIRY',
  logLevel: 'LOG_LEVEL',
  shutdownTimeout: 'SHUTDOWN_TIMEOUT',
  quotaUploadsInFlight: 'QUOTA_UPLOADS_IN_FLIGHT',
  quotaBytesInFlight: 'QUOTA_BYTES_IN_FLIGHT',
  rateLimitCreations: 'RATE_LIMIT_CREATIONS',
  sseMaxPerSubject: 'SSE_MAX_PER_SUBJECT',
  eventsPollInterval: 'EVENTS_POLL_INTERVAL',
  eventsHeartbeatInterval: 'EVENTS_HEARTBEAT_INTERVAL',
  nodeUrl: 'NODE_URL',
  clusterSecret: 'CLUSTER_SECRET',
  nodeHeartbeatInterval: 'NODE_HEARTBEAT_INTERVAL',
  nodeTtl: 'NODE_TTL',
  peerIdleTimeout: 'PEER_IDLE_TIMEOUT',
  replicationFactor: 'REPLICATION_FACTOR',
  replicationChain: 'REPLICATION_CHAIN',
  replicationReconcileInterval: 'REPLICATION_RECONCILE_INTERVAL',
  adminToken: 'ADMIN_TOKEN',
  amqpUrl: 'AMQP_URL',
  queuePrefix: 'QUEUE_PREFIX',
  jobPrefetch: 'JOB_PREFETCH',
  jobMaxAttempts: 'JOB_MAX_ATTEMPTS',
  jobRetryDelay: 'JOB_RETRY_DELAY',
  jobDeliveryLimit: 'JOB_DELIVERY_LIMIT',
  outboxPollInterval: 'OUTBOX_POLL_INTERVAL',
  renditions: 'MEDIA_RENDITIONS',
  x264Preset: 'MEDIA_X264_PRESET',
  ffmpegTimeout: 'FFMPEG_TIMEOUT',
  mediaProbeTimeout: 'MEDIA_PROBE_TIMEOUT',
  mediaMaxDuration: 'MEDIA_MAX_DURATION',
  thumbnailCount: 'MEDIA_THUMBNAIL_COUNT',
  mediaNice: 'MEDIA_NICE',
  ffmpegPath: 'FFMPEG_PATH',
  ffprobePath: 'FFPROBE_PATH',
  searchPath: 'PATH',
  metricsToken: 'METRICS_TOKEN',
  retentionInterval: 'RETENTION_INTERVAL',
  expiredUploadGrace: 'EXPIRED_UPLOAD_GRACE',
  eventRetention: 'EVENT_RETENTION',
  originalRetention: 'ORIGINAL_RETENTION',
  webhookUrl: 'WEBHOOK_URL',
  webhookSecret: 'WEBHOOK_SECRET',
  webhookTimeout: 'WEBHOOK_TIMEOUT',
  webhookAllowPrivate: 'WEBHOOK_ALLOW_PRIVATE',
  mediaSigningSecret: 'MEDIA_SIGNING_SECRET',
  mediaUrlTtl: 'MEDIA_URL_TTL',
}

/** Standard Webhooks secrets: optional `whsec_`, then base64 of 24-64 bytes (what the specification's libraries generate). */
export function webhookSecretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64')
}

function validWebhookSecret(secret: string): boolean {
  const encoded = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret
  const key = webhookSecretKey(secret)
  return /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) && key.length >= 24 && key.length <= 64
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const defaultsFile = (() => {
  // Works from src/ (tsx) and from dist/src/ (compiled).
  for (const candidate of [path.join(projectRoot, 'config/default.json'), path.join(projectRoot, '../config/default.json')]) {
    try {
      return JSON.parse(readFileSync(candidate, 'utf8')) as Record<string, unknown>
    } catch {}
  }
  throw new ConfigError('config/default.json is missing')
})()

/**
 * Build the config from defaults, the environment and explicit overrides (tests), in that
 * order. Throws ConfigError with one line naming the variable and what it expects.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Record<keyof z.input<typeof configSchema>, unknown>> = {}
): Config {
  const raw: Record<string, unknown> = {...defaultsFile}
  for (const [key, name] of Object.entries(ENV_NAMES)) {
    if (env[name] !== undefined) raw[key] = env[name]
  }
  Object.assign(raw, overrides)
  const result = configSchema.safeParse(raw)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const key = String(issue.path[0]) as keyof typeof ENV_NAMES
    throw new ConfigError(`invalid ${ENV_NAMES[key] ?? key}: ${issue.message}`)
  }
  const config = result.data
  if (config.clusterSecret && config.clusterSecret.length < 32) {
    throw new ConfigError('invalid CLUSTER_SECRET: expected at least 32 characters')
  }
  if (config.webhookUrl && !config.webhookSecret) throw new ConfigError('invalid WEBHOOK_SECRET: needed with WEBHOOK_URL (whsec_ followed by base64)')
  if (config.webhookSecret && !validWebhookSecret(config.webhookSecret)) {
    throw new ConfigError('invalid WEBHOOK_SECRET: expected whsec_ followed by the base64 of 24 to 64 random bytes')
  }
  if (config.authJwtSecret && config.authJwtSecret.length < 32) {
    throw new ConfigError('invalid AUTH_JWT_SECRET: expected at least 32 characters for HS256')
  }
  if (config.mediaSigningSecret && config.mediaSigningSecret.length < 32) {
    throw new ConfigError('invalid MEDIA_SIGNING_SECRET: expected at least 32 characters for HS256')
  }
  if (config.mediaUrlTtl < 1000) throw new ConfigError('invalid MEDIA_URL_TTL: expected at least 1s')
  return {...config, dataDir: path.resolve(config.dataDir), nodeId: config.nodeId ?? os.hostname()}
}
