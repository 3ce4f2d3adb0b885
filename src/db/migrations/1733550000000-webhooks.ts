import type {MigrationInterface, QueryRunner} from 'typeorm'

/**
 * Webhooks: a `webhook` kind of job, and the deliveries it owes, one per event (the outbox row
 * it announces, whose id is the delivery's webhook-id), recorded by the relay that starts the
 * job and marked delivered once the receiver answered 2xx.
 */
export class Webhooks1733550000000 implements MigrationInterface {
  name = 'Webhooks1733550000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check`)
    await q.query(`ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('transcode','snapshot','fanout','webhook'))`)
    await q.query(`
      CREATE TABLE webhook_deliveries (
        event_id     bigint PRIMARY KEY,
        upload_id    text NOT NULL,
        topic        text NOT NULL,
        attempts     int NOT NULL DEFAULT 0,
        last_error   text,
        created_at   timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz
      )`)
    await q.query(`CREATE INDEX webhook_deliveries_owed_idx ON webhook_deliveries (upload_id, event_id) WHERE delivered_at IS NULL`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE webhook_deliveries`)
    await q.query(`DELETE FROM jobs WHERE kind = 'webhook'`)
    await q.query(`ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check`)
    await q.query(`ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('transcode','snapshot','fanout'))`)
  }
}
