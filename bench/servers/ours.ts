/**
 * Our node, full stack: koa + @tus/server + UploadStore, PostgreSQL in a fresh schema (dropped
 * on exit), sha256 + md5 while streaming, the outbox relay, logging at info as in production (to
 * /dev/null). No media consumers, as `ingest serve` runs beside separate workers: the upload
 * path is what is measured here (bench/upload-during-transcode.ts measures it beside a transcode,
 * with the consumers of `npm start`).
 */
import {randomBytes} from 'node:crypto'
import path from 'node:path'
import pg from 'pg'
import {loadConfig} from '../../src/config/index.js'
import {createLogger} from '../../src/logger.js'
import {JobRegistry} from '../../src/jobs/registry.js'
import {startNode} from '../../src/node.js'
import {announceReady, serverOptions} from '../lib/servers.js'

const {workDir, databaseUrl, consumers} = serverOptions()
const schema = `bench_${randomBytes(6).toString('hex')}`
// Every benchmark client is one caller (127.0.0.1): the per-caller limits stay on, checked on
// every creation as in production, but high enough for the largest burst a suite sends.
const limits = {quotaUploadsInFlight: 1_000_000, quotaBytesInFlight: Number.MAX_SAFE_INTEGER, rateLimitCreations: 1_000_000}
const config = loadConfig({}, {host: '127.0.0.1', port: 0, dataDir: workDir, databaseUrl, databaseSchema: schema, logLevel: 'info', ...limits})
const node = await startNode(config, createLogger({level: config.logLevel, pretty: false}), consumers ? {} : {registry: new JobRegistry()})

async function dropSchema(): Promise<void> {
  const client = new pg.Client({connectionString: databaseUrl})
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  } finally {
    await client.end()
  }
}

announceReady({url: node.url, storageDir: path.join(config.dataDir, 'uploads')}, async () => {
  await node.close()
  await dropSchema()
})
