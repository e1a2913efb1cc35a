import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * Where decision lines go. `line()` takes one complete line (no newline);
 * `flush()` writes what is pending. Lines are printable ASCII (see json() in
 * index.ts), so a string's length is its byte length.
 */
export interface LineOut {
  line (s: string): void
  flush (): void
}

/** Bytes gathered before a write(2): one syscall costs ~3 us on the test VM, so lines go out in big runs. */
const CHUNK = 65536
/** How long a full pipe (EAGAIN) may hold the writer before the chunk counts as lost. */
const EAGAIN_WAIT_MS = 1000

export interface WriteError { code: string, message: string }

/**
 * A lock shared by the writers of one descriptor (the daemon's worker
 * threads): a SharedArrayBuffer of 4 bytes, made once by the main thread.
 */
export function newWriteLock (): SharedArrayBuffer {
  return new SharedArrayBuffer(4)
}

/**
 * Buffered, line-aligned writes to a file descriptor. Lines are copied into
 * one preallocated 64 KiB buffer as they come (no string joins, no
 * allocation) and written as a run of whole lines when it is full or when the
 * owner flushes at its batch boundary.
 *
 * Several writers (one per worker thread) on one file or pipe pass the same
 * lock: a run is written under it to the last byte (partial writes resumed),
 * so lines of different writers never mix, whatever the descriptor is.
 *
 * A write error (EPIPE: the reader went away, ENOSPC) is reported once
 * through `onError`, and the lines after it are counted in `lost`, never
 * thrown into the packet path.
 */
export class FdLines implements LineOut {
  readonly fd: number
  readonly #owned: boolean
  readonly #buf = Buffer.allocUnsafe(CHUNK)
  #used = 0
  #count = 0
  readonly #lock: Int32Array | null
  /** Lines handed to write(2). */
  written = 0
  /** Lines not written because of an error. */
  lost = 0
  error: WriteError | null = null
  onError: ((e: WriteError) => void) | null = null

  /** `-` (or 1) for stdout, a number for an open descriptor, or a path (created, appended). */
  constructor (dest: string | number, lock?: SharedArrayBuffer) {
    if (dest === '-' || typeof dest === 'number') {
      this.fd = dest === '-' ? 1 : dest
      this.#owned = false
    } else {
      mkdirSync(dirname(dest), { recursive: true })
      this.fd = openSync(dest, 'a', 0o640)
      this.#owned = true
    }
    this.#lock = lock === undefined ? null : new Int32Array(lock)
  }

  line (s: string): void {
    if (this.error !== null) { this.lost++; return }
    const n = s.length + 1
    if (this.#used + n > CHUNK) {
      this.flush()
      if (n > CHUNK) { this.#run(Buffer.from(s + '\n', 'latin1'), 1); return }
    }
    this.#used += this.#buf.write(s, this.#used, 'latin1')
    this.#buf[this.#used++] = 0x0a
    this.#count++
  }

  flush (): void {
    if (this.#count === 0) return
    const n = this.#count
    const used = this.#used
    this.#count = 0
    this.#used = 0
    this.#run(this.#buf.subarray(0, used), n)
  }

  #run (buf: Buffer, count: number): void {
    if (this.error !== null) { this.lost += count; return }
    const lock = this.#lock
    if (lock !== null) while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) Atomics.wait(lock, 0, 1, 5)
    try {
      this.#writeAll(buf, count)
    } finally {
      if (lock !== null) { Atomics.store(lock, 0, 0); Atomics.notify(lock, 0, 1) }
    }
  }

  #writeAll (buf: Buffer, count: number): void {
    let off = 0
    let waited = 0
    while (off < buf.length) {
      try {
        off += writeSync(this.fd, buf, off, buf.length - off)
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        if (e.code === 'EAGAIN' && waited < EAGAIN_WAIT_MS) {
          Atomics.wait(SLEEPER, 0, 0, 1)
          waited++
          continue
        }
        this.error = { code: e.code ?? 'EIO', message: e.message }
        this.lost += count
        this.onError?.(this.error)
        return
      }
    }
    this.written += count
  }

  close (): void {
    this.flush()
    if (this.#owned) closeSync(this.fd)
  }
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4))

/** Keeps lines in memory (tests). */
export class MemoryLines implements LineOut {
  readonly raw: string[] = []
  line (s: string): void { this.raw.push(s) }
  flush (): void {}
  /** Every line, parsed. */
  parsed (): Array<Record<string, any>> { return this.raw.map((l) => JSON.parse(l) as Record<string, any>) }
}
