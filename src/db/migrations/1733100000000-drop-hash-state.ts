import type {MigrationInterface, QueryRunner} from 'typeorm'

/**
 * Whole-file hashes now come from Node's crypto, kept in memory between requests; its state
 * cannot be saved, so the saved hash-wasm state is gone (see src/uploads/upload-hasher.ts).
 */
export class DropHashState1733100000000 implements MigrationInterface {
  name = 'DropHashState1733100000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE uploads DROP COLUMN hash_state, DROP COLUMN hashed_bytes`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE uploads ADD COLUMN hashed_bytes bigint NOT NULL DEFAULT 0, ADD COLUMN hash_state bytea`)
  }
}
