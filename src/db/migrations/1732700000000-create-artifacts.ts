import type {MigrationInterface, QueryRunner} from 'typeorm'

/** Artifacts (files derived from an upload) and what the probe learnt about the upload's media. */
export class CreateArtifacts1732700000000 implements MigrationInterface {
  name = 'CreateArtifacts1732700000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE uploads
        ADD COLUMN media_probe      jsonb,
        ADD COLUMN duration_seconds double precision CHECK (duration_seconds >= 0),
        ADD COLUMN width            int CHECK (width > 0),
        ADD COLUMN height           int CHECK (height > 0)`)
    // rendition is '' for artifacts that have none (poster, thumbnails), so the unique key
    // holds without NULLS NOT DISTINCT (PostgreSQL 15+): a redelivered job upserts, never duplicates.
    await q.query(`
      CREATE TABLE artifacts (
        id           bigserial PRIMARY KEY,
        upload_id    text NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
        kind         text NOT NULL CHECK (kind IN ('mp4','hls','poster','thumbnail','storyboard')),
        rendition    text NOT NULL DEFAULT '',
        path         text NOT NULL CHECK (path <> '' AND path NOT LIKE '/%' AND path NOT LIKE '%..%'),
        size         bigint NOT NULL CHECK (size >= 0),
        sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        content_type text NOT NULL,
        node_id      text NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        UNIQUE (upload_id, kind, rendition, path)
      )`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE artifacts`)
    await q.query(`ALTER TABLE uploads DROP COLUMN media_probe, DROP COLUMN duration_seconds, DROP COLUMN width, DROP COLUMN height`)
  }
}
