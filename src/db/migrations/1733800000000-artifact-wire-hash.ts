import type {MigrationInterface, QueryRunner} from 'typeorm'

/**
 * Each artifact's xxHash3-128 beside its sha256 (src/media/wire-hash.ts): replicas are verified
 * by it on the wire, cheaper than SHA-256. Rows made before have none and are verified by sha256.
 */
export class ArtifactWireHash1733800000000 implements MigrationInterface {
  name = 'ArtifactWireHash1733800000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE artifacts ADD COLUMN xxh128 text`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE artifacts DROP COLUMN xxh128`)
  }
}
