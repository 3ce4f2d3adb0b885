import type {ValueTransformer} from 'typeorm'

/** pg returns bigint as a string; byte counts fit in a JS number (2^53 bytes = 8 PiB). */
export const bigintAsNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | null) => (value === null || value === undefined ? null : Number(value)),
}
