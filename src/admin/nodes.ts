/**
 * Which nodes make up the deployment, for `ingest nodes ls`. Until nodes register themselves
 * (src/cluster), a node knows only itself; once a `nodes` table exists, its rows are listed
 * too. The cluster module can replace this with its own NodeDirectory: the admin API only
 * asks for `list()`.
 */
import type {DataSource} from 'typeorm'
import type {JobKind} from '../jobs/job-kinds.js'

export interface NodeView {
  id: string
  url: string | null
  /** The node that answered this request. */
  self: boolean
  broker: 'amqp' | 'memory' | null
  /** Kinds of jobs it consumes (known for this node only, until nodes register). */
  consumes: JobKind[]
  startedAt: string | null
  lastSeenAt: string | null
}

export interface NodeDirectory {
  list(): Promise<NodeView[]>
}

export interface ThisNode {
  id: string
  url: string | null
  startedAt: Date
  /** Its pipeline, once started. */
  pipeline(): {broker: {name: 'amqp' | 'memory'}; consumedKinds: JobKind[]} | undefined
}

type Row = Record<string, unknown>

const text = (v: unknown) => (v == null ? null : String(v))
const time = (v: unknown) => (v == null ? null : new Date(v as string).toISOString())

export class DatabaseNodeDirectory implements NodeDirectory {
  constructor(
    private readonly db: DataSource,
    private readonly self: ThisNode
  ) {}

  async list(): Promise<NodeView[]> {
    const pipeline = this.self.pipeline()
    const me: NodeView = {
      id: this.self.id,
      url: this.self.url,
      self: true,
      broker: pipeline?.broker.name ?? null,
      consumes: pipeline?.consumedKinds ?? [],
      startedAt: this.self.startedAt.toISOString(),
      lastSeenAt: new Date().toISOString(),
    }
    const others = (await this.registered()).filter((row) => text(row.id) !== me.id)
    const views = others.map((row) => ({
      id: String(row.id),
      url: text(row.url ?? row.public_url),
      self: false,
      broker: null,
      consumes: [],
      startedAt: time(row.started_at),
      lastSeenAt: time(row.last_seen_at ?? row.heartbeat_at),
    }))
    return [me, ...views].sort((a, b) => a.id.localeCompare(b.id))
  }

  /** Rows of the `nodes` table when the cluster module has created it; none before. */
  private async registered(): Promise<Row[]> {
    const [found] = (await this.db.query(`SELECT to_regclass('nodes') IS NOT NULL AS present`)) as Array<{present: boolean}>
    if (!found?.present) return []
    return (await this.db.query(`SELECT * FROM nodes`)) as Row[]
  }
}
