/**
 * Where a node's CPU time went: reads a .cpuprofile (node --cpu-prof; the benchmarks write one
 * for our node with BENCH_CPU_PROF=<dir>) and prints self time by package / source folder and
 * by function.  Usage: npx tsx bench/tools/cpu-profile-summary.ts <file.cpuprofile> [top]
 */
import {readFile} from 'node:fs/promises'
import {textTable} from '../lib/table.js'

interface ProfileNode {
  id: number
  callFrame: {functionName: string; url: string; lineNumber: number}
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** "node_modules/@tus/server", "src/uploads", "node:internal/streams", "(wasm)", ... */
function place(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  if (url.startsWith('wasm://')) return '(wasm)'
  if (url.startsWith('node:')) return url.split('/').slice(0, 3).join('/')
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (modules) return `node_modules/${modules[1]}`
  const ours = /\/(src|bench|consumers)\/(.*)\/[^/]+$/.exec(url)
  if (ours) return `${ours[1]}/${ours[2]}`
  return url.replace(/^file:\/\//, '')
}

const [file, topText] = process.argv.slice(2)
if (!file) {
  process.stderr.write('usage: cpu-profile-summary <file.cpuprofile> [top]\n')
  process.exit(2)
}
const top = Number(topText ?? 25)
const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfMs = new Map<number, number>()
profile.samples.forEach((id, i) => selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000))
const total = [...selfMs.values()].reduce((a, b) => a + b, 0)

const byPlace = new Map<string, number>()
const byFunction = new Map<string, number>()
for (const [id, ms] of selfMs) {
  const {functionName, url, lineNumber} = byId.get(id)!.callFrame
  const where = place(url, functionName)
  byPlace.set(where, (byPlace.get(where) ?? 0) + ms)
  const key = `${functionName || '(anonymous)'}  ${url ? `${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/')}:${lineNumber + 1}` : ''}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + ms)
}

const rows = (map: Map<string, number>) =>
  [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => [name, ms.toFixed(0), `${((ms / total) * 100).toFixed(1)}%`])

process.stdout.write(`${file}: ${(total / 1000).toFixed(1)} s sampled over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s\n\n`)
process.stdout.write(`${textTable(['self time by place', 'ms', 'share'], rows(byPlace), 'lrr')}\n\n`)
process.stdout.write(`${textTable(['self time by function', 'ms', 'share'], rows(byFunction), 'lrr')}\n`)
