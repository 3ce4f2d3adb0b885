/**
 * The benchmark knobs, read from the environment in this one place. Defaults are the figures
 * the issue asks for; the variables shrink them for a quick run.
 */
import os from 'node:os'
import {GiB, MiB} from './format.js'

const UNITS: Record<string, number> = {b: 1, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, kb: 1e3, mb: 1e6, gb: 1e9}

function size(name: string, fallback: number): number {
  const text = process.env[name]
  if (!text) return fallback
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(text)
  if (!match) throw new Error(`${name}: expected a size such as 256MiB or 1GiB`)
  return Math.round(Number(match[1]) * UNITS[(match[2] ?? 'b').toLowerCase()]!)
}

function count(name: string, fallback: number): number {
  const text = process.env[name]
  if (!text) return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name}: expected a whole number >= 1`)
  return value
}

function choice<T extends string>(name: string, values: readonly T[]): T {
  const text = (process.env[name] ?? values[0]!) as T
  if (!values.includes(text)) throw new Error(`${name}: expected one of ${values.join(', ')}`)
  return text
}

/** A link rate as tc reads it: 100mbit, 1gbit, 10gbit... */
function rate(name: string, fallback: string): string {
  const text = (process.env[name] ?? fallback).trim().toLowerCase()
  if (!/^\d+(\.\d+)?(kbit|mbit|gbit)$/.test(text)) throw new Error(`${name}: expected a rate such as 100mbit or 1gbit`)
  return text
}

const flag = (name: string): boolean => ['1', 'true', 'yes'].includes((process.env[name] ?? '').toLowerCase())

export const settings = {
  /** Point 1: size of the single large upload. */
  largeUploadSize: size('BENCH_SIZE', 1 * GiB),
  /** Repetitions per measured configuration (each server measured this many times). */
  throughputRuns: count('BENCH_RUNS', 5),
  concurrencyRuns: count('BENCH_RUNS', 3),
  memoryRuns: count('BENCH_RUNS', 2),
  /** Point 6: the small and the huge upload whose peak RSS must match. */
  memorySmallSize: size('BENCH_MEMORY_SMALL', 100 * MiB),
  memoryLargeSize: size('BENCH_MEMORY_LARGE', 4 * GiB),
  skipHugeUpload: flag('BENCH_SKIP_4GIB'),
  /** Issue 9 point 5 (bench/replication.ts): the big artifact, and the HLS folder's shape. */
  replicationSize: size('BENCH_REPLICATION_SIZE', 1 * GiB),
  hlsRenditions: count('BENCH_HLS_RENDITIONS', 4),
  hlsSegments: count('BENCH_HLS_SEGMENTS', 150),
  hlsSegmentSize: size('BENCH_HLS_SEGMENT_SIZE', 200 * 1000),
  replicationRuns: count('BENCH_RUNS', 3),
  /** Issue 19: where replication is measured (loopback, network namespaces with shaped links, or both), and the links' rate (tc). */
  replicationTestbed: choice('BENCH_TESTBED', ['both', 'loopback', 'network'] as const),
  linkRate: rate('BENCH_LINK_RATE', '1gbit'),
  /** bench/cluster-upload.ts: one upload through haproxy, forwarded or not (BENCH_SIZE shrinks it). */
  clusterUploadSize: size('BENCH_SIZE', 512 * MiB),
  clusterUploadChunk: size('BENCH_CHUNK', 8 * MiB),
  clusterUploadRuns: count('BENCH_RUNS', 3),
  /** Issue 16 point 3 (bench/slow-uploads.ts): uploads held open at once, and how long each trickles. */
  slowUploads: count('BENCH_SLOW_UPLOADS', 10_000),
  slowUploadSeconds: count('BENCH_SLOW_SECONDS', 60),
  /** Issue 16 point 4 (bench/upload-during-transcode.ts): the upload measured beside a transcode. */
  transcodeUploadSize: size('BENCH_TRANSCODE_UPLOAD', 256 * MiB),
  /** PostgreSQL for our node; each run uses a fresh schema, dropped afterwards. */
  databaseUrl: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  /** Where inputs and server data go (deleted afterwards). */
  tmpDir: process.env.BENCH_TMPDIR ?? os.tmpdir(),
  /** When set, our node's log (pino, info) is appended to this file instead of dropped. */
  serverLog: process.env.BENCH_SERVER_LOG || undefined,
  /** When set, our node runs with --cpu-prof and writes its profile here. */
  cpuProfileDir: process.env.BENCH_CPU_PROF || undefined,
}

/** The non-default knobs in effect, to put in front of a reproduce command. */
export function envPrefix(names: string[]): string {
  const set = names.filter((n) => process.env[n]).map((n) => `${n}=${process.env[n]}`)
  return set.length > 0 ? `${set.join(' ')} ` : ''
}
