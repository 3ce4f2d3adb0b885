/**
 * The embedded database for the no-services default: PGlite (PostgreSQL in WebAssembly) behind
 * TypeORM's postgres dialect. PGlite has a single session, and typeorm-pglite hands that one
 * session to every caller, so two transactions at once would interleave. This pool makes the
 * single session an honest pool of size one: a connection is held from connect() until release.
 */
import {PGlitePool} from 'typeorm-pglite/dist/pglite-pool.js'
import {PGliteDriver} from 'typeorm-pglite'

class SessionMutex {
  private tail: Promise<void> = Promise.resolve()

  acquire(): Promise<() => void> {
    let release!: () => void
    const next = new Promise<void>((resolve) => (release = resolve))
    const acquired = this.tail.then(() => release)
    this.tail = this.tail.then(() => next)
    return acquired
  }
}

type ConnectCallback = Parameters<PGlitePool['connect']>[0]

/** Returns the `driver` object for TypeORM's DataSource options. */
export function embeddedPostgresDriver(dataDir: string): unknown {
  // Sets PGlite's options (data directory, boolean serializer) for the shared instance.
  new PGliteDriver({dataDir})
  const mutex = new SessionMutex()

  class SerializedPool extends PGlitePool {
    override async connect(callback: ConnectCallback) {
      const release = await mutex.acquire()
      let released = false
      return super.connect((err, client) => {
        const done = () => {
          if (!released) {
            released = true
            release()
          }
        }
        if (err) done()
        callback(err, client, done)
      })
    }
  }
  return {Pool: SerializedPool}
}
