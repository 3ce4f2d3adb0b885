/** The kinds of background work. Adding one here makes the compiler ask for its policy and schema. */
export const JOB_KINDS = ['transcode', 'snapshot', 'fanout', 'webhook'] as const
export type JobKind = (typeof JOB_KINDS)[number]

export function isJobKind(value: string): value is JobKind {
  return (JOB_KINDS as readonly string[]).includes(value)
}
