import type {MigrationInterface, QueryRunner} from 'typeorm'

export class CreateUploads1732540000000 implements MigrationInterface {
  name = 'CreateUploads1732540000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE uploads (
        id             text PRIMARY KEY,
        owner          text,
        filename       text,
        filetype       text,
        metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
        size           bigint CHECK (size >= 0),
        bytes_received bigint NOT NULL DEFAULT 0 CHECK (bytes_received >= 0),
        status         text NOT NULL CHECK (status IN ('uploading','completed','processing','ready','failed','expired','terminated')),
        node_id        text NOT NULL,
        sha256         text,
        md5            text,
        hashed_bytes   bigint NOT NULL DEFAULT 0,
        hash_state     bytea,
        failure_reason text,
        expires_at     timestamptz,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now(),
        completed_at   timestamptz,
        CHECK (size IS NULL OR bytes_received <= size)
      )`)
    await q.query(`CREATE INDEX uploads_owner_created_idx ON uploads (owner, created_at DESC, id DESC)`)
    await q.query(`CREATE INDEX uploads_created_idx ON uploads (created_at DESC, id DESC)`)
    await q.query(`CREATE INDEX uploads_expiring_idx ON uploads (expires_at) WHERE status = 'uploading'`)
    await q.query(`
      CREATE TABLE outbox (
        id           bigserial PRIMARY KEY,
        topic        text NOT NULL,
        upload_id    text REFERENCES uploads(id) ON DELETE SET NULL,
        payload      jsonb NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz,
        attempts     int NOT NULL DEFAULT 0,
        last_error   text
      )`)
    await q.query(`CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE outbox`)
    await q.query(`DROP TABLE uploads`)
  }
}
