/** Liveness (/healthz: the process answers) and readiness (/readyz: database and storage work). */
import {randomUUID} from 'node:crypto'
import {unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import Router from '@koa/router'
import type {DataSource} from 'typeorm'
import type {AppState} from '../request-context-middleware.js'
import {withTimeout} from '../../timeouts.js'

export function healthRoutes(db: DataSource, dataDir: string): Router<AppState> {
  const router = new Router<AppState>()

  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store')
    ctx.body = {status: 'ok'}
  })

  router.get('/readyz', async (ctx) => {
    const checks = {database: await check(() => db.query('SELECT 1')), storage: await check(() => probeStorage(dataDir))}
    const ready = Object.values(checks).every((c) => c === 'ok')
    ctx.set('Cache-Control', 'no-store')
    ctx.status = ready ? 200 : 503
    ctx.body = {status: ready ? 'ready' : 'unavailable', checks}
  })

  return router
}

async function check(probe: () => Promise<unknown>): Promise<string> {
  try {
    await withTimeout(probe(), 2000)
    return 'ok'
  } catch (error) {
    return (error as Error).message.split('\n')[0]!.slice(0, 200)
  }
}

async function probeStorage(dataDir: string): Promise<void> {
  const probe = path.join(dataDir, `.ready-${randomUUID()}`)
  await writeFile(probe, 'ok')
  await unlink(probe)
}

