import type {MigrationInterface, QueryRunner} from 'typeorm'

/** tus concatenation (partial and final uploads) and checksum-verified appends. */
export class UploadConcatAndChecksum1732800000000 implements MigrationInterface {
  name = 'UploadConcatAndChecksum1732800000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE uploads ADD COLUMN upload_concat text`)
    await q.query(`ALTER TABLE uploads ADD COLUMN concat_parts text[]`)
    await q.query(`ALTER TABLE uploads ADD COLUMN unverified_from bigint`)
    await q.query(`CREATE INDEX uploads_final_parts_idx ON uploads USING gin (concat_parts) WHERE status = 'uploading'`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX uploads_final_parts_idx`)
    await q.query(`ALTER TABLE uploads DROP COLUMN unverified_from, DROP COLUMN concat_parts, DROP COLUMN upload_concat`)
  }
}
