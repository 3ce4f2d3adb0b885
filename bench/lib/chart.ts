/**
 * The chart in docs/benchmarks.svg: one horizontal bar per record, ours/baseline on a log scale
 * centred on 1 (parity), written by hand as SVG so it needs no dependency.
 */
import {goalMet, type BenchRecord} from './results.js'

const ROW = 24
const LABEL_WIDTH = 470
const PLOT_WIDTH = 420
const TOP = 56
const LIMIT = 3 // log2 range shown: 1/8 .. 8

const COLORS = {met: '#2e7d32', missed: '#c62828', favourable: '#81c784', unfavourable: '#e57373'}

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function x(ratio: number): number {
  const clamped = Math.max(-LIMIT, Math.min(LIMIT, Math.log2(ratio)))
  return LABEL_WIDTH + ((clamped + LIMIT) / (2 * LIMIT)) * PLOT_WIDTH
}

function colour(record: BenchRecord): string {
  const met = goalMet(record)
  if (met !== undefined) return met ? COLORS.met : COLORS.missed
  const favourable = record.better === 'higher' ? record.ratio! >= 1 : record.ratio! <= 1
  return favourable ? COLORS.favourable : COLORS.unfavourable
}

export function ratioChart(records: readonly BenchRecord[], title: string): string {
  const shown = records.filter((r) => r.ratio !== null && r.ratio > 0)
  const height = TOP + shown.length * ROW + 60
  const width = LABEL_WIDTH + PLOT_WIDTH + 70
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="10" y="40" fill="#555">ours / baseline, log scale; ↑ higher is better, ↓ lower is better; dark bars carry a goal (tick)</text>`,
  ]
  for (const tick of [0.125, 0.25, 0.5, 1, 2, 4, 8]) {
    const tx = x(tick)
    parts.push(`<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${TOP + shown.length * ROW}" stroke="${tick === 1 ? '#333' : '#ddd'}" stroke-width="${tick === 1 ? 1.5 : 1}"/>`)
    parts.push(`<text x="${tx}" y="${TOP + shown.length * ROW + 16}" text-anchor="middle" fill="#555">${tick < 1 ? `1/${1 / tick}` : tick}</text>`)
  }
  shown.forEach((record, i) => {
    const y = TOP + i * ROW
    const ratio = record.ratio!
    const [from, to] = [x(Math.min(1, ratio)), x(Math.max(1, ratio))]
    const arrow = record.better === 'higher' ? '↑' : '↓'
    parts.push(`<text x="${LABEL_WIDTH - 8}" y="${y + 16}" text-anchor="end">${escapeXml(`${record.name} ${arrow}`)}</text>`)
    parts.push(`<rect x="${from}" y="${y + 4}" width="${Math.max(1, to - from)}" height="${ROW - 8}" fill="${colour(record)}"/>`)
    if (record.goal?.ratio !== undefined) {
      const gx = x(record.goal.ratio)
      parts.push(`<line x1="${gx}" y1="${y + 1}" x2="${gx}" y2="${y + ROW - 1}" stroke="#000" stroke-width="2"/>`)
    }
    const clipped = Math.abs(Math.log2(ratio)) > LIMIT ? '…' : ''
    parts.push(`<text x="${x(Math.max(1, ratio)) + 4}" y="${y + 16}" fill="#333">${ratio.toFixed(2)}${clipped}</text>`)
  })
  const legendY = TOP + shown.length * ROW + 40
  const legend: Array<[string, string]> = [
    [COLORS.met, 'goal met'],
    [COLORS.missed, 'goal not met'],
    [COLORS.favourable, 'no goal, ours better'],
    [COLORS.unfavourable, 'no goal, ours worse'],
  ]
  legend.forEach(([fill, label], i) => {
    const lx = 10 + i * 170
    parts.push(`<rect x="${lx}" y="${legendY - 10}" width="12" height="12" fill="${fill}"/><text x="${lx + 18}" y="${legendY}">${label}</text>`)
  })
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}
