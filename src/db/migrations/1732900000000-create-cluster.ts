import type {MigrationInterface, QueryRunner} from 'typeorm'

/** The cluster: nodes that beat, and where each artifact's verified copies are. */
export class CreateCluster1732900000000 implements MigrationInterface {
  name = 'CreateCluster1732900000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE nodes (
        id           text PRIMARY KEY,
        url          text NOT NULL,
        started_at   timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now()
      )`)
    await q.query(`
      CREATE TABLE replicas (
        artifact_id bigint NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
        node_id     text NOT NULL,
        sha256      text NOT NULL,
        size        bigint NOT NULL,
        verified_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (artifact_id, node_id)
      )`)
    await q.query(`CREATE INDEX replicas_node_idx ON replicas (node_id)`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE replicas`)
    await q.query(`DROP TABLE nodes`)
  }
}
