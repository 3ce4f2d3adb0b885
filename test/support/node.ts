/**
 * Starts a real upload node in-process for a test: its own data directory, and either the
 * embedded database or its own schema in the test PostgreSQL, removed afterwards.
 */
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import pino, {type Logger} from 'pino'
import {loadConfig, type Config} from '../../src/config/index.js'
import {JobRegistry} from '../../src/jobs/registry.js'
import {startNode, type NodeOptions, type RunningNode} from '../../src/node.js'
import {requireService, TEST_DATABASE_URL} from './services.js'

export type DatabaseKind = 'postgres' | 'embedded'
export const DATABASE_KINDS: DatabaseKind[] = ['postgres', 'embedded']

export interface TestNode extends RunningNode {
  config: Config
  dataDir: string
  /** Stops the node and removes its data directory and schema. */
  stop(): Promise<void>
}

export async function freshSchema(): Promise<{schema: string; drop(): Promise<void>}> {
  await requireService('PostgreSQL', TEST_DATABASE_URL)
  const schema = `t_${randomBytes(6).toString('hex')}`
  return {
    schema,
    async drop() {
      const client = new pg.Client({connectionString: TEST_DATABASE_URL})
      await client.connect()
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      } finally {
        await client.end()
      }
    },
  }
}

/** What every test node's config starts from (loopback, a free port, silent, no expiry sweeper, a quick shutdown), then `overrides`. */
export function testNodeConfig(dataDir: string, overrides: Parameters<typeof loadConfig>[1]): Config {
  return loadConfig({}, {host: '127.0.0.1', port: 0, dataDir, logLevel: 'silent', expirySweepInterval: 0, shutdownTimeout: 2000, ...overrides})
}

/**
 * `options.registry` defaults to no job handlers: tests of the upload path need no transcoding
 * (pass the consumers' registry, or handlers of the test's own, to run jobs).
 */
export async function startTestNode(
  kind: DatabaseKind,
  overrides: Parameters<typeof loadConfig>[1] = {},
  options: NodeOptions = {registry: new JobRegistry()},
  log?: Logger
): Promise<TestNode> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ingest-test-'))
  const schema = kind === 'postgres' ? await freshSchema() : undefined
  const config = testNodeConfig(
    dataDir,
    {
      searchPath: process.env.PATH ?? '',
      // Suites create uploads and streams by the hundred from one address; test/security/quotas turns them on.
      quotaUploadsInFlight: 0,
      quotaBytesInFlight: 0,
      rateLimitCreations: 0,
      sseMaxPerSubject: 0,
      ...(schema ? {databaseUrl: TEST_DATABASE_URL, databaseSchema: schema.schema} : {}),
      ...overrides,
    }
  )
  const node = await startNode(config, log ?? pino({level: config.logLevel}), options)
  return {
    ...node,
    config,
    dataDir,
    async stop() {
      await node.close()
      await schema?.drop()
      await rm(dataDir, {recursive: true, force: true})
    },
  }
}
