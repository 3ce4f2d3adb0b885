/** Summary statistics over repeated measurements. */

export interface Summary {
  median: number
  min: number
  max: number
  runs: number
}

function sorted(values: readonly number[]): number[] {
  if (values.length === 0) throw new Error('no values to summarise')
  return [...values].sort((a, b) => a - b)
}

/** Nearest-rank percentile (p in 0..100) of the values. */
export function percentile(values: readonly number[], p: number): number {
  const ordered = sorted(values)
  const rank = Math.ceil((p / 100) * ordered.length)
  return ordered[Math.min(ordered.length, Math.max(1, rank)) - 1]!
}

export function median(values: readonly number[]): number {
  const ordered = sorted(values)
  const middle = ordered.length >> 1
  return ordered.length % 2 === 1 ? ordered[middle]! : (ordered[middle - 1]! + ordered[middle]!) / 2
}

export const min = (values: readonly number[]): number => sorted(values)[0]!
export const max = (values: readonly number[]): number => sorted(values).at(-1)!

export function summarize(values: readonly number[]): Summary {
  return {median: median(values), min: min(values), max: max(values), runs: values.length}
}
