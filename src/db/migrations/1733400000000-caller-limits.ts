import type {MigrationInterface, QueryRunner} from 'typeorm'

/**
 * Limits per caller (uploads/caller-limits.ts) and the change feed of the event streams
 * (uploads/upload-changes.ts):
 * - `uploads.caller`: who created the upload ("sub:<JWT subject>" or "ip:<address>"), with an
 *   index over the unfinished ones, which the in-flight quotas count;
 * - `creation_windows`: creations per caller per minute, counted by an atomic upsert;
 * - `event_streams`: the open event streams, per caller and node;
 * - `upload_changed` notifications (payload "<schema>:<upload id>") when what an event stream
 *   shows changes: an outbox row for an upload, a job's status or progress, an upload's status.
 */
export class CallerLimits1733400000000 implements MigrationInterface {
  name = 'CallerLimits1733400000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE uploads ADD COLUMN caller text`)
    await q.query(`CREATE INDEX uploads_in_flight_idx ON uploads (caller) WHERE status = 'uploading'`)
    await q.query(`
      CREATE TABLE creation_windows (
        caller       text NOT NULL,
        window_start timestamptz NOT NULL,
        creations    int NOT NULL,
        PRIMARY KEY (caller, window_start)
      )`)
    await q.query(`
      CREATE TABLE event_streams (
        id        bigserial PRIMARY KEY,
        caller    text NOT NULL,
        node_id   text NOT NULL,
        opened_at timestamptz NOT NULL DEFAULT now()
      )`)
    await q.query(`CREATE INDEX event_streams_caller_idx ON event_streams (caller)`)
    await q.query(`CREATE INDEX event_streams_node_idx ON event_streams (node_id)`)
    // Two functions: PL/pgSQL resolves NEW's fields when it runs, and uploads has no upload_id.
    await q.query(`
      CREATE FUNCTION upload_changed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('upload_changed', TG_TABLE_SCHEMA || ':' || NEW.upload_id);
        RETURN NULL;
      END $$`)
    await q.query(`
      CREATE FUNCTION upload_row_changed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('upload_changed', TG_TABLE_SCHEMA || ':' || NEW.id);
        RETURN NULL;
      END $$`)
    await q.query(`CREATE TRIGGER outbox_upload_changed AFTER INSERT ON outbox FOR EACH ROW WHEN (NEW.upload_id IS NOT NULL) EXECUTE FUNCTION upload_changed_notify()`)
    await q.query(`CREATE TRIGGER jobs_inserted_upload_changed AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION upload_changed_notify()`)
    await q.query(`
      CREATE TRIGGER jobs_updated_upload_changed AFTER UPDATE ON jobs FOR EACH ROW
      WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress)
      EXECUTE FUNCTION upload_changed_notify()`)
    await q.query(`
      CREATE TRIGGER uploads_upload_changed AFTER UPDATE ON uploads FOR EACH ROW
      WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.failure_reason IS DISTINCT FROM NEW.failure_reason)
      EXECUTE FUNCTION upload_row_changed_notify()`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER uploads_upload_changed ON uploads`)
    await q.query(`DROP TRIGGER jobs_updated_upload_changed ON jobs`)
    await q.query(`DROP TRIGGER jobs_inserted_upload_changed ON jobs`)
    await q.query(`DROP TRIGGER outbox_upload_changed ON outbox`)
    await q.query(`DROP FUNCTION upload_row_changed_notify()`)
    await q.query(`DROP FUNCTION upload_changed_notify()`)
    await q.query(`DROP TABLE event_streams`)
    await q.query(`DROP TABLE creation_windows`)
    await q.query(`DROP INDEX uploads_in_flight_idx`)
    await q.query(`ALTER TABLE uploads DROP COLUMN caller`)
  }
}
