import type {MigrationInterface, QueryRunner} from 'typeorm'

/**
 * Reruns (JOB_POLICIES `rerun`): a job can owe one more run because new work arrived while an
 * attempt was running, and a run can start after earlier ones, with a fresh attempt budget
 * counted from the attempt it started at (attempt numbers keep growing, so the history stays whole).
 */
export class JobReruns1733200000000 implements MigrationInterface {
  name = 'JobReruns1733200000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE jobs ADD COLUMN rerun_owed boolean NOT NULL DEFAULT false`)
    await q.query(`ALTER TABLE jobs ADD COLUMN run_first_attempt int NOT NULL DEFAULT 1 CHECK (run_first_attempt >= 1)`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE jobs DROP COLUMN run_first_attempt, DROP COLUMN rerun_owed`)
  }
}
