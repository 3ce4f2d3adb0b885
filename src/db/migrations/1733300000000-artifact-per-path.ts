import type {MigrationInterface, QueryRunner} from 'typeorm'

/**
 * One artifact row per file: rows were unique on (upload, kind, rendition, path), so the master
 * playlist, rewritten as each rendition lands, had one row per rendition, each with the hash of
 * the bytes of its day. The newest row of each path is kept (its replicas with it), and the
 * master playlist belongs to no rendition.
 */
export class ArtifactPerPath1733300000000 implements MigrationInterface {
  name = 'ArtifactPerPath1733300000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      DELETE FROM artifacts a
       USING artifacts b
       WHERE a.upload_id = b.upload_id AND a.path = b.path
         AND (a.updated_at, a.id) < (b.updated_at, b.id)`)
    // The master playlist was the one file several renditions claimed (src/media/transcode.ts).
    await q.query(`UPDATE artifacts SET rendition = '' WHERE path = 'hls/master.m3u8'`)
    await q.query(`ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_upload_id_kind_rendition_path_key`)
    await q.query(`ALTER TABLE artifacts ADD CONSTRAINT artifacts_upload_id_path_key UNIQUE (upload_id, path)`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE artifacts DROP CONSTRAINT artifacts_upload_id_path_key`)
    await q.query(`ALTER TABLE artifacts ADD CONSTRAINT artifacts_upload_id_kind_rendition_path_key UNIQUE (upload_id, kind, rendition, path)`)
  }
}
