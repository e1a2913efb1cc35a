import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/** Bytes gathered before a write(2): one syscall costs ~3 us on the test VM, so lines go out in big runs. */
export const CHUNK = 65536
/** How long a full pipe (EAGAIN) may hold the writer before the chunk counts as lost. */
const EAGAIN_WAIT_MS = 1000
const NEWLINE = 0x0a

export interface WriteError { code: string, message: string }

/**
 * Lines gathered in one preallocated 64 KiB buffer and handed on as runs of
 * whole lines (`emit`) when it is full or when the owner flushes at its
 * batch boundary. A line is either a string (`line()`, for pino and tests)
 * or bytes written in place: `room(n)` makes room for a line of at most n
 * bytes and returns the buffer, the writer puts bytes at `pos` and advances
 * it, `end()` closes the line. Lines are printable ASCII (see json() in
 * index.ts), so a string's length is its byte length.
 */
export abstract class LineBuffer {
  readonly buf: Buffer = Buffer.allocUnsafe(CHUNK)
  pos = 0
  #count = 0

  /** Room for one line of at most n bytes (n <= CHUNK), the newline included. */
  room (n: number): Buffer {
    if (this.pos + n > CHUNK) this.flush()
    return this.buf
  }

  end (): void {
    this.buf[this.pos++] = NEWLINE
    this.#count++
  }

  line (s: string): void {
    const n = s.length + 1
    if (n > CHUNK) {
      this.flush()
      this.emit(Buffer.from(s + '\n', 'latin1'), 1)
      return
    }
    this.room(n)
    this.pos += this.buf.write(s, this.pos, 'latin1')
    this.end()
  }

  flush (): void {
    if (this.#count === 0) return
    const n = this.#count
    const used = this.pos
    this.#count = 0
    this.pos = 0
    this.emit(this.buf.subarray(0, used), n)
  }

  /** A run of `count` whole lines; the bytes are only valid during the call. */
  protected abstract emit (bytes: Buffer, count: number): void
}

/**
 * A lock shared by the writers of one descriptor (the daemon's worker
 * threads): a SharedArrayBuffer of 4 bytes, made once by the main thread.
 */
export function newWriteLock (): SharedArrayBuffer {
  return new SharedArrayBuffer(4)
}

/**
 * Lines to a file descriptor, one write(2) per run.
 *
 * Several writers (one per worker thread) on one file or pipe pass the same
 * lock: a run is written under it to the last byte (partial writes resumed),
 * so lines of different writers never mix, whatever the descriptor is.
 *
 * A write error (EPIPE: the reader went away, ENOSPC) is reported once
 * through `onError`, and the lines after it are counted in `lost`, never
 * thrown into the packet path.
 */
export class FdLines extends LineBuffer {
  /** The descriptor written to; a path's is replaced by reopen(). */
  fd: number
  readonly #owned: boolean
  /** The file, when the destination is a path (reopen() opens it again). */
  readonly path: string | null
  readonly #lock: Int32Array | null
  /** Lines handed to write(2). */
  written = 0
  /** Lines not written because of an error. */
  lost = 0
  error: WriteError | null = null
  onError: ((e: WriteError) => void) | null = null

  /** `-` (or 1) for stdout, a number for an open descriptor, or a path (created, appended). */
  constructor (dest: string | number, lock?: SharedArrayBuffer) {
    super()
    if (dest === '-' || typeof dest === 'number') {
      this.fd = dest === '-' ? 1 : dest
      this.#owned = false
      this.path = null
    } else {
      mkdirSync(dirname(dest), { recursive: true })
      this.fd = openSync(dest, 'a', 0o640)
      this.#owned = true
      this.path = dest
    }
    this.#lock = lock === undefined ? null : new Int32Array(lock)
  }

  protected emit (bytes: Buffer, count: number): void {
    if (this.error !== null) { this.lost += count; return }
    const lock = this.#lock
    if (lock !== null) while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) Atomics.wait(lock, 0, 1, 5)
    try {
      this.#writeAll(bytes, count)
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

  /**
   * Open the path again (after logrotate moved the file away): the lines
   * gathered so far go to the old file, the next ones to the new. Opened
   * before the old one is closed, so when the open fails (directory gone,
   * permissions) the lines go on to the old file and the error is returned.
   * A reopen clears an earlier write error: writing resumes. Nothing to do
   * for stdout or a descriptor given as a number.
   */
  reopen (): WriteError | null {
    this.flush()
    if (this.path === null) return null
    let fd: number
    try {
      fd = openSync(this.path, 'a', 0o640)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      return { code: e.code ?? 'EIO', message: e.message }
    }
    const old = this.fd
    this.fd = fd
    this.error = null
    closeSync(old)
    return null
  }

  close (): void {
    this.flush()
    if (this.#owned) closeSync(this.fd)
  }
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4))

/** Keeps lines in memory (tests). */
export class MemoryLines extends LineBuffer {
  readonly #lines: string[] = []
  protected emit (bytes: Buffer): void {
    const text = bytes.toString('latin1')
    for (const l of text.slice(0, -1).split('\n')) this.#lines.push(l)
  }

  /** Every line so far, as text. */
  get raw (): string[] {
    this.flush()
    return this.#lines
  }

  /** Every line so far, parsed. */
  parsed (): Array<Record<string, any>> { return this.raw.map((l) => JSON.parse(l) as Record<string, any>) }

  clear (): void {
    this.flush()
    this.#lines.length = 0
  }
}
