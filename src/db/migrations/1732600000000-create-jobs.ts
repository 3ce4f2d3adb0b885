import type {MigrationInterface, QueryRunner} from 'typeorm'

/** Jobs and their attempt history; a trigger that wakes outbox relays when an event is written. */
export class CreateJobs1732600000000 implements MigrationInterface {
  name = 'CreateJobs1732600000000'

  async up(q: QueryRunner): Promise<void> {
    // No foreign key to uploads: a job message may name an upload that has vanished, and its
    // handler records that rather than the insert failing.
    await q.query(`
      CREATE TABLE jobs (
        id          bigserial PRIMARY KEY,
        upload_id   text NOT NULL,
        kind        text NOT NULL CHECK (kind IN ('transcode','snapshot','fanout')),
        status      text NOT NULL CHECK (status IN ('queued','running','succeeded','failed','dead')),
        attempts    int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_error  text,
        progress    smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        worker_node text,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now(),
        started_at  timestamptz,
        finished_at timestamptz,
        UNIQUE (upload_id, kind)
      )`)
    await q.query(`CREATE INDEX jobs_pending_idx ON jobs (id) WHERE status IN ('queued','running','failed')`)
    await q.query(`
      CREATE TABLE job_attempts (
        id          bigserial PRIMARY KEY,
        job_id      bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        attempt     int NOT NULL,
        worker_node text NOT NULL,
        started_at  timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        outcome     text CHECK (outcome IN ('succeeded','failed','dead','abandoned','handed_back')),
        error       text,
        UNIQUE (job_id, attempt)
      )`)
    await q.query(`
      CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('outbox_inserted', TG_TABLE_SCHEMA);
        RETURN NULL;
      END $$`)
    await q.query(`CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER outbox_inserted ON outbox`)
    await q.query(`DROP FUNCTION outbox_notify()`)
    await q.query(`DROP TABLE job_attempts`)
    await q.query(`DROP TABLE jobs`)
  }
}
