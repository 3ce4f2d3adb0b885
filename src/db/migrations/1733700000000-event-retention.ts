import type {MigrationInterface, QueryRunner} from 'typeorm'

/** Published outbox events are pruned by age (retention.ts): an index to find the old ones without scanning them all. */
export class EventRetention1733700000000 implements MigrationInterface {
  name = 'EventRetention1733700000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX outbox_published_idx`)
  }
}
