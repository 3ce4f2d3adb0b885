/**
 * Peak resident memory of a child process, from /proc/<pid>/status. reset() lowers the kernel's
 * high-water mark (VmHWM) to the current RSS (write "5" to clear_refs), so each measurement
 * covers only its own run; where that is refused, a 10 ms VmRSS sampler stands in.
 */
import {readFileSync, writeFileSync} from 'node:fs'

function statusField(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`)
  return Number(match[1]) * 1024
}

export class PeakRss {
  private sampler?: NodeJS.Timeout
  private sampled = 0
  private hwmResets = true

  constructor(readonly pid: number) {}

  /** Bytes resident now. */
  current(): number {
    return statusField(this.pid, 'VmRSS')
  }

  /** Starts a measurement. */
  reset(): void {
    this.stopSampler()
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5')
    } catch {
      this.hwmResets = false
    }
    this.sampled = this.current()
    if (!this.hwmResets) {
      this.sampler = setInterval(() => {
        try {
          this.sampled = Math.max(this.sampled, this.current())
        } catch {
          this.stopSampler()
        }
      }, 10)
    }
  }

  /** Peak bytes resident since reset(). */
  read(): number {
    const peak = this.hwmResets ? statusField(this.pid, 'VmHWM') : Math.max(this.sampled, this.current())
    this.stopSampler()
    return peak
  }

  private stopSampler(): void {
    if (this.sampler) clearInterval(this.sampler)
    this.sampler = undefined
  }
}
