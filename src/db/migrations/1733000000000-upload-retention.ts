import type {MigrationInterface, QueryRunner} from 'typeorm'

/** Retention (src/uploads/retention.ts): when an original was removed, and the indexes its passes and the metrics use. */
export class UploadRetention1733000000000 implements MigrationInterface {
  name = 'UploadRetention1733000000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE uploads ADD COLUMN original_removed_at timestamptz`)
    await q.query(`CREATE INDEX uploads_node_status_idx ON uploads (node_id, status)`)
    await q.query(`CREATE INDEX uploads_gone_idx ON uploads (updated_at) WHERE status IN ('expired','terminated')`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX uploads_gone_idx`)
    await q.query(`DROP INDEX uploads_node_status_idx`)
    await q.query(`ALTER TABLE uploads DROP COLUMN original_removed_at`)
  }
}
