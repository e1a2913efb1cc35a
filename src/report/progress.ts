/**
 * A one-line progress bar on a terminal (stderr), redrawn at most every
 * REDRAW_MS: bytes read from disk against the files' total size, the rate,
 * and the file being read. Cleared when done, so what follows starts on a
 * clean line. Only for a TTY: a pipe or a file gets nothing.
 */

const REDRAW_MS = 100
const WIDTH = 30

export interface ProgressOut {
  write (s: string): unknown
}

const mb = (n: number): string => (n / 1e6).toFixed(n < 1e8 ? 1 : 0)

export class Progress {
  readonly #out: ProgressOut
  readonly #total: number
  readonly #started: number
  readonly #now: () => number
  #base = 0
  #label = ''
  #drawn = 0
  #shown = false

  constructor (out: ProgressOut, totalBytes: number, now: () => number = Date.now) {
    this.#out = out
    this.#total = totalBytes
    this.#now = now
    this.#started = now()
  }

  /** A new file starts: its bytes add to those of the files before it. */
  file (label: string, bytesBefore: number): void {
    this.#label = label.replace(/[^\x20-\x7e]/g, '?')
    this.#base = bytesBefore
  }

  /** Bytes of the current file read so far. */
  update (bytes: number): void {
    const t = this.#now()
    if (t - this.#drawn < REDRAW_MS) return
    this.#drawn = t
    const done = Math.min(this.#base + bytes, this.#total)
    const frac = this.#total > 0 ? done / this.#total : 1
    const fill = Math.round(frac * WIDTH)
    const secs = Math.max((t - this.#started) / 1000, 0.001)
    const label = this.#label.length > 40 ? '...' + this.#label.slice(-37) : this.#label
    this.#out.write(`\r\x1b[K[${'#'.repeat(fill)}${'.'.repeat(WIDTH - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ` +
      `${mb(done)}/${mb(this.#total)} MB ${mb(done / secs)} MB/s ${label}`)
    this.#shown = true
  }

  end (): void {
    if (this.#shown) this.#out.write('\r\x1b[K')
    this.#shown = false
  }
}
