/**
 * The database: TypeORM over PostgreSQL (pg) when DATABASE_URL is set, over the embedded
 * PGlite otherwise. Same entities, same migrations; the schema is only ever changed by
 * migrations (never `synchronize`).
 */
import {mkdirSync} from 'node:fs'
import path from 'node:path'
import {DataSource} from 'typeorm'
import type {Config} from '../config/index.js'
import {embeddedPostgresDriver} from './embedded-driver.js'
import {ArtifactEntity} from './entities/artifact.js'
import {JobAttemptEntity} from './entities/job-attempt.js'
import {JobEntity} from './entities/job.js'
import {OutboxEventEntity} from './entities/outbox-event.js'
import {UploadEntity} from './entities/upload.js'
import {UploadMediaEntity} from './entities/upload-media.js'
import {migrations} from './migrations/index.js'

export const entities = [UploadEntity, OutboxEventEntity, JobEntity, JobAttemptEntity, ArtifactEntity, UploadMediaEntity]

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

export async function openDatabase(config: Pick<Config, 'databaseUrl' | 'databaseSchema' | 'dataDir'>): Promise<DataSource> {
  const schema = config.databaseSchema
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error('DATABASE_SCHEMA must be a lower-case identifier')
  }
  const common = {
    type: 'postgres' as const,
    entities,
    migrations,
    migrationsRun: false,
    synchronize: false,
    logging: false,
  }
  let dataSource: DataSource
  if (config.databaseUrl) {
    dataSource = new DataSource({
      ...common,
      url: config.databaseUrl,
      // connectTimeoutMS is also how long a query waits for a free connection of the pool: under a
      // burst of uploads that queue, not PostgreSQL, is what is slow (an unreachable server
      // still fails at once: refused). Past it the request gets a 503 (error-handler.ts).
      ...(schema ? {schema, extra: {options: `-c search_path=${schema}`, max: 20}} : {extra: {max: 20}}),
      connectTimeoutMS: 15_000,
    })
  } else {
    const dir = path.join(config.dataDir, 'pglite')
    mkdirSync(dir, {recursive: true})
    dataSource = new DataSource({...common, driver: embeddedPostgresDriver(dir)})
  }
  await dataSource.initialize()
  try {
    if (schema) await dataSource.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
    await runMigrationsExclusively(dataSource, Boolean(config.databaseUrl))
  } catch (error) {
    await dataSource.destroy().catch(() => {})
    throw error
  }
  return dataSource
}

/** Several nodes may start at once against one database: one of them migrates, the others wait. */
async function runMigrationsExclusively(dataSource: DataSource, shared: boolean): Promise<void> {
  if (!shared) {
    await dataSource.runMigrations({transaction: 'each'})
    return
  }
  const lockHolder = dataSource.createQueryRunner()
  await lockHolder.connect()
  try {
    await lockHolder.query(`SELECT pg_advisory_lock(hashtext('video-ingest:migrations'))`)
    await dataSource.runMigrations({transaction: 'each'})
  } finally {
    await lockHolder.query(`SELECT pg_advisory_unlock(hashtext('video-ingest:migrations'))`).catch(() => {})
    await lockHolder.release()
  }
}
