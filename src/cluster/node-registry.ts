/**
 * The cluster's members: each node registers itself with the URL its peers use and beats every
 * NODE_HEARTBEAT_INTERVAL; a node that has not beaten for NODE_TTL is out of the live set.
 */
import type {DataSource} from 'typeorm'
import type {Logger} from 'pino'

export interface ClusterNode {
  id: string
  url: string
  startedAt: Date
  lastSeenAt: Date
  live: boolean
}

export class NodeRegistry {
  private timer?: NodeJS.Timeout

  constructor(
    private readonly db: DataSource,
    private readonly log: Logger,
    readonly self: {id: string; url: string},
    private readonly options: {heartbeatMs: number; ttlMs: number}
  ) {}

  /** When this life of the node started, as its peers read it (ms); set by start(). */
  incarnation?: number

  async start(): Promise<void> {
    const [row] = (await this.db.query(
      `INSERT INTO nodes (id, url, started_at, last_seen_at) VALUES ($1, $2, now(), now())
       ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, started_at = now(), last_seen_at = now()
       RETURNING started_at`,
      [this.self.id, this.self.url]
    )) as Array<{started_at: Date}>
    this.incarnation = new Date(row!.started_at).getTime()
    this.timer = setInterval(() => void this.beat(), this.options.heartbeatMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    // Leaving on purpose: drop out of the live set at once rather than after the TTL.
    await this.db.query(`UPDATE nodes SET last_seen_at = now() - interval '1 day' WHERE id = $1`, [this.self.id]).catch(() => {})
  }

  private async beat(): Promise<void> {
    try {
      await this.db.query(`UPDATE nodes SET last_seen_at = now(), url = $2 WHERE id = $1`, [this.self.id, this.self.url])
    } catch (error) {
      this.log.warn({err: error}, 'node heartbeat failed')
    }
  }

  async list(): Promise<ClusterNode[]> {
    const rows = (await this.db.query(
      `SELECT id, url, started_at, last_seen_at, last_seen_at > now() - ($1 || ' milliseconds')::interval AS live FROM nodes ORDER BY id`,
      [String(this.options.ttlMs)]
    )) as Array<{id: string; url: string; started_at: Date; last_seen_at: Date; live: boolean}>
    return rows.map((r) => ({id: r.id, url: r.url, startedAt: new Date(r.started_at), lastSeenAt: new Date(r.last_seen_at), live: r.live}))
  }

  async live(): Promise<ClusterNode[]> {
    return (await this.list()).filter((n) => n.live)
  }

  /** Live peers (every live node but this one). */
  async livePeers(): Promise<ClusterNode[]> {
    return (await this.live()).filter((n) => n.id !== this.self.id)
  }

  async find(id: string): Promise<ClusterNode | undefined> {
    return (await this.list()).find((n) => n.id === id)
  }
}
