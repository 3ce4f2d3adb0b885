import type {MigrationInterface, QueryRunner} from 'typeorm'

/**
 * What a finished attempt did ("poster, 5 thumbnails, storyboard") has its own column on jobs
 * and job_attempts: `last_error` and `error` hold failures only. An attempt with nothing to do
 * ends `skipped`. Success summaries that earlier rows kept in the error columns are moved over.
 */
export class JobSummary1733900000000 implements MigrationInterface {
  name = 'JobSummary1733900000000'

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE jobs ADD COLUMN summary text`)
    await q.query(`ALTER TABLE job_attempts ADD COLUMN summary text`)
    await q.query(`UPDATE jobs SET summary = last_error, last_error = NULL WHERE status = 'succeeded' AND last_error IS NOT NULL`)
    await q.query(`UPDATE job_attempts SET summary = error, error = NULL WHERE outcome = 'succeeded' AND error IS NOT NULL`)
    await q.query(`ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_outcome_check`)
    await q.query(`ALTER TABLE job_attempts ADD CONSTRAINT job_attempts_outcome_check CHECK (outcome IN ('succeeded','skipped','failed','dead','abandoned','handed_back'))`)
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE job_attempts SET outcome = 'succeeded' WHERE outcome = 'skipped'`)
    await q.query(`ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_outcome_check`)
    await q.query(`ALTER TABLE job_attempts ADD CONSTRAINT job_attempts_outcome_check CHECK (outcome IN ('succeeded','failed','dead','abandoned','handed_back'))`)
    await q.query(`UPDATE job_attempts SET error = summary WHERE outcome = 'succeeded' AND summary IS NOT NULL`)
    await q.query(`UPDATE jobs SET last_error = summary WHERE status = 'succeeded' AND summary IS NOT NULL`)
    await q.query(`ALTER TABLE job_attempts DROP COLUMN summary`)
    await q.query(`ALTER TABLE jobs DROP COLUMN summary`)
  }
}
