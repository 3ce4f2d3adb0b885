/**
 * Helpers for the admin tests: a node on the test PostgreSQL and RabbitMQ (its own schema and
 * queue prefix) with an admin token and test handlers, and the `ingest` CLI run as a child
 * process (the compiled one under `npm test`, which builds first; tsx otherwise).
 */
import {spawn} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import pino from 'pino'
import type {Config} from '../../src/config/index.js'
import type {JobRegistry} from '../../src/jobs/registry.js'
import {retryDelays} from '../../src/jobs/job-policies.js'
import {topology} from '../../src/jobs/topology.js'
import {startNode, type RunningNode} from '../../src/node.js'
import {removeTopology, testPrefix} from './pipeline-support.js'
import {freshSchema, testNodeConfig} from './node.js'
import {TEST_AMQP_URL, TEST_DATABASE_URL} from './services.js'

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef'
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export interface AdminTestNode extends RunningNode {
  config: Config
  stop(): Promise<void>
}

export async function startAdminNode(registry: JobRegistry, options: {broker: 'amqp' | 'memory'; adminToken?: string | null}): Promise<AdminTestNode> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ingest-admin-'))
  const schema = await freshSchema()
  const prefix = testPrefix()
  const config = testNodeConfig(
    dataDir,
    {
      databaseUrl: TEST_DATABASE_URL,
      databaseSchema: schema.schema,
      outboxPollInterval: 50,
      jobRetryDelay: 100,
      jobMaxAttempts: 2,
      ...(options.adminToken === null ? {} : {adminToken: options.adminToken ?? ADMIN_TOKEN}),
      ...(options.broker === 'amqp' ? {amqpUrl: TEST_AMQP_URL, queuePrefix: prefix} : {}),
    }
  )
  const node = await startNode(config, pino({level: 'silent'}), {registry, kinds: registry.kinds()})
  return {
    ...node,
    config,
    async stop() {
      await node.close()
      if (options.broker === 'amqp') await removeTopology(topology(prefix, retryDelays(100, 2), config.jobDeliveryLimit))
      await schema.drop()
      await rm(dataDir, {recursive: true, force: true})
    },
  }
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `ingest <args>` against a node, with INGEST_URL and INGEST_ADMIN_TOKEN unless `env` overrides them. */
export function ingest(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const compiled = process.env.NODE_ENV === 'test'
  const command = compiled ? [path.join(root, 'dist/src/cli/index.js')] : ['--import', 'tsx', path.join(root, 'src/cli/index.ts')]
  const childEnv: Record<string, string> = {PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp'}
  for (const [key, value] of Object.entries(env)) if (value !== undefined) childEnv[key] = value
  const child = spawn(process.execPath, [...command, ...args], {cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => resolve({code, stdout, stderr}))
  })
}

/** `ingest` bound to a node and its token. */
export function cliFor(node: {url: string}, token = ADMIN_TOKEN) {
  return (...args: string[]) => ingest(args, {INGEST_URL: node.url, INGEST_ADMIN_TOKEN: token})
}
