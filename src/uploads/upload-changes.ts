/**
 * One listener per node for "something an event stream shows has changed" about an upload:
 * PostgreSQL NOTIFY on `upload_changed` (triggers on the outbox, jobs and uploads tables, see
 * the caller-limits migration), fired by whichever node or worker made the change. With
 * PostgreSQL a dedicated connection LISTENs; on the embedded default the same triggers notify
 * PGlite's own session, in process. Every open event stream of the node is fed from here,
 * instead of each stream polling the database.
 */
import pg from 'pg'
import type {Logger} from 'pino'
import type {DataSource} from 'typeorm'
import {getPGliteInstance} from 'typeorm-pglite'

const CHANNEL = 'upload_changed'
const RECONNECT_MS = 1000

export type ChangeListener = (uploadId: string) => void

export class UploadChanges {
  private readonly listeners = new Set<ChangeListener>()
  private readonly resyncs = new Set<() => void>()
  private client?: pg.Client
  private stopListening?: () => void
  private schema = 'public'
  private closed = false
  private reconnectTimer?: NodeJS.Timeout
  /** False while no notification can arrive (connection lost): streams then poll. */
  listening = false

  constructor(
    private readonly db: DataSource,
    private readonly databaseUrl: string | undefined,
    private readonly log: Logger
  ) {}

  async start(): Promise<void> {
    const [row] = (await this.db.query(`SELECT current_schema() AS schema`)) as Array<{schema: string}>
    this.schema = row!.schema
    if (this.databaseUrl) return this.connect()
    try {
      await this.listenEmbedded()
    } catch (error) {
      this.log.warn({err: error}, 'could not LISTEN for upload changes; event streams poll')
    }
  }

  /** Calls `listener` with the id of each upload that changed. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Called when notifications may have been missed (the listener reconnected): look again. */
  onResync(listener: () => void): () => void {
    this.resyncs.add(listener)
    return () => this.resyncs.delete(listener)
  }

  async close(): Promise<void> {
    this.closed = true
    this.listening = false
    clearTimeout(this.reconnectTimer)
    this.stopListening?.()
    await this.client?.end().catch(() => {})
  }

  private deliver(payload: string | undefined): void {
    if (!payload) return
    const colon = payload.indexOf(':')
    if (colon < 0 || payload.slice(0, colon) !== this.schema) return
    const id = payload.slice(colon + 1)
    for (const listener of this.listeners) listener(id)
  }

  private async listenEmbedded(): Promise<void> {
    const pglite = await getPGliteInstance()
    this.stopListening = pglite.onNotification((channel, payload) => {
      if (channel === CHANNEL) this.deliver(payload)
    })
    // Through the pool, so the LISTEN never lands inside another caller's transaction.
    await this.db.query(`LISTEN ${CHANNEL}`)
    this.listening = true
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({connectionString: this.databaseUrl})
    client.on('notification', (message) => {
      if (message.channel === CHANNEL) this.deliver(message.payload)
    })
    client.on('error', (error) => {
      this.log.warn({err: error}, 'upload change listener lost its connection; event streams poll until it is back')
      this.lost(client)
    })
    client.on('end', () => this.lost(client))
    try {
      await client.connect()
      await client.query(`LISTEN ${CHANNEL}`)
    } catch (error) {
      this.log.warn({err: error}, 'could not LISTEN for upload changes; event streams poll until it works')
      this.lost(client)
      return
    }
    this.client = client
    this.listening = true
    for (const resync of this.resyncs) resync()
  }

  private lost(client: pg.Client): void {
    if (this.client === client) this.client = undefined
    this.listening = false
    void client.end().catch(() => {})
    if (this.closed || this.reconnectTimer) return
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      if (!this.closed && !this.client) void this.connect()
    }, RECONNECT_MS)
    this.reconnectTimer.unref()
  }
}
