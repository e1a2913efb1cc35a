import { open, stat, type FileHandle } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Readable } from 'node:stream'

/**
 * Lines of a log as raw bytes (no newline), in order: from a stream (stdin,
 * journalctl's stdout), from a file read once, or from a file followed the
 * way `tail -F` follows one. Lines stay Buffers so `--json` can write the
 * bytes it read, not a UTF-8 round trip of them (an invalid byte would come
 * back as U+FFFD).
 *
 * Following a file by name, every POLL_MS:
 * - appended bytes are read and split at newlines; a last line without its
 *   newline waits for the rest (the writer may be mid-line);
 * - truncated (the size is below what was read: `copytruncate`, `: > file`):
 *   reading starts again at 0, and a notice says so;
 * - moved away and a new file created under the name (logrotate's default,
 *   then SIGUSR2 makes the daemon reopen): what is left in the old file is
 *   read to its end, then the new one is opened and read from 0;
 * - removed and not (yet) replaced: the old file is still read (a writer may
 *   still hold it) until a file with the name appears.
 */

/** How often a followed file is looked at: a person reading a live tail does not notice 250 ms. */
export const POLL_MS = 250
/** Bytes read per call. */
const CHUNK = 65_536
/**
 * Longest line kept. Decision lines are under 2 KiB (ALPN is capped at 16
 * protocols of 64 bytes); a longer "line" is not ours (a binary file, a
 * missing newline) and is dropped and counted rather than held in memory.
 */
export const MAX_LINE_BYTES = 1_048_576

/** Stands for a line longer than MAX_LINE_BYTES, which was dropped: the reader counts it as a bad line. */
export const OVERLONG: Buffer = Buffer.alloc(0)

const NL = 0x0a

/** Splits chunks into lines; keeps the unfinished tail. */
export class LineSplitter {
  #parts: Buffer[] = []
  #len = 0
  #overlong = false

  /** Lines completed by `chunk`, in order. */
  push (chunk: Buffer, out: Buffer[]): void {
    let start = 0
    for (;;) {
      const nl = chunk.indexOf(NL, start)
      if (nl < 0) break
      this.#add(chunk.subarray(start, nl))
      out.push(this.#take())
      start = nl + 1
    }
    if (start < chunk.length) this.#add(chunk.subarray(start))
  }

  /** The unfinished last line, if any (end of input, or the end of a rotated file). */
  end (out: Buffer[]): void {
    if (this.#len > 0 || this.#overlong) out.push(this.#take())
  }

  /** Forget the unfinished line (the file was truncated under it). */
  reset (): void {
    this.#parts = []
    this.#len = 0
    this.#overlong = false
  }

  #add (b: Buffer): void {
    if (this.#overlong) return
    if (this.#len + b.length > MAX_LINE_BYTES) {
      this.#overlong = true
      this.#parts = []
      this.#len = 0
      return
    }
    // A chunk's bytes are reused by no one (every read gets a new buffer), so keeping a view is safe.
    this.#parts.push(b)
    this.#len += b.length
  }

  #take (): Buffer {
    const line = this.#overlong ? OVERLONG : this.#parts.length === 1 ? this.#parts[0] as Buffer : Buffer.concat(this.#parts, this.#len)
    this.reset()
    return line
  }
}

/** The lines of a stream, to its end (a last line without a newline included). */
export async function * streamLines (stream: Readable): AsyncGenerator<Buffer> {
  const split = new LineSplitter()
  const out: Buffer[] = []
  for await (const chunk of stream) {
    split.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk as Buffer, out)
    yield * out
    out.length = 0
  }
  split.end(out)
  yield * out
}

export interface FileLinesOptions {
  /** Keep reading as the file grows, is rotated or truncated, until `signal` aborts. */
  follow: boolean
  /** Start with the last `last` lines that `selects` takes (null: from the start of the file). */
  last: number | null
  /** Whether a raw line would be shown (used to find where the last `last` shown lines start). */
  selects: (line: Buffer) => boolean
  /** Something a person following the file should know (rotated, truncated, gone); one line, no newline. */
  notice: (text: string) => void
  signal: AbortSignal
  pollMs?: number
}

/** The error for a file that cannot be read, phrased for the user. */
export class FileError extends Error {}

function describe (path: string, err: unknown): FileError {
  const code = (err as NodeJS.ErrnoException).code
  const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied (the log is usually readable by root and group adm or aigate)' : code === 'EISDIR' ? 'a directory, not a log file' : (err as Error).message
  return new FileError(`${path}: ${why}`)
}

/**
 * Where reading must start so the last `n` lines `selects` takes are read:
 * the file is read backwards a chunk at a time, so `-f` on a 10 GB log costs
 * what its last lines cost. 0 when the file holds fewer.
 */
export async function startOfLast (fh: FileHandle, size: number, n: number, selects: (line: Buffer) => boolean): Promise<number> {
  if (n <= 0) return size
  let found = 0
  let end = size
  /** Bytes after the last newline seen, not yet a whole line (read back to front). */
  let tail = Buffer.alloc(0)
  while (end > 0) {
    const from = Math.max(0, end - CHUNK)
    const buf = Buffer.alloc(end - from)
    const { bytesRead } = await fh.read(buf, 0, buf.length, from)
    if (bytesRead < buf.length) return 0 // shrank under us: read it all
    const block = tail.length > 0 ? Buffer.concat([buf, tail]) : buf
    let stop = block.length
    for (;;) {
      const nl = block.lastIndexOf(NL, stop - 1)
      if (nl < 0) break
      // The line from nl + 1 to stop; an empty last piece after the final newline is not a line.
      if (!(stop === block.length && end === size && nl + 1 === stop && tail.length === 0)) {
        if (selects(block.subarray(nl + 1, stop)) && ++found === n) return from + nl + 1
      }
      stop = nl
    }
    tail = Buffer.from(block.subarray(0, stop))
    if (tail.length > MAX_LINE_BYTES) tail = Buffer.alloc(0)
    end = from
  }
  return 0
}

interface Opened { fh: FileHandle, dev: number, ino: number }

async function openLog (path: string): Promise<Opened> {
  const fh = await open(path, 'r')
  try {
    const st = await fh.stat()
    if (st.isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' })
    return { fh, dev: st.dev, ino: st.ino }
  } catch (err) {
    await fh.close()
    throw err
  }
}

/** Where reading a file is: its position, and the line it is in the middle of. */
interface Cursor { pos: number, split: LineSplitter }

/**
 * The lines `fh` holds past `c.pos`, a chunk's worth at a time (so a large
 * file is never held whole: the reader's pace, and stdout's backpressure,
 * set how much is read); the unfinished last line stays in `c.split`.
 */
async function * drain (fh: FileHandle, c: Cursor): AsyncGenerator<Buffer> {
  const out: Buffer[] = []
  for (;;) {
    const buf = Buffer.alloc(CHUNK)
    const { bytesRead } = await fh.read(buf, 0, CHUNK, c.pos)
    if (bytesRead === 0) return
    c.pos += bytesRead
    c.split.push(buf.subarray(0, bytesRead), out)
    yield * out
    out.length = 0
  }
}

/** The lines of a log file; with `follow`, forever (until the signal aborts), across rotation and truncation. */
export async function * fileLines (path: string, o: FileLinesOptions): AsyncGenerator<Buffer> {
  const pollMs = o.pollMs ?? POLL_MS
  const nap = async (): Promise<boolean> => {
    try {
      await sleep(pollMs, undefined, { signal: o.signal })
      return true
    } catch {
      return false
    }
  }
  let cur: Opened | null = null
  try {
    cur = await openLog(path)
  } catch (err) {
    if (!o.follow || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw describe(path, err)
    o.notice(`${path}: not there yet; waiting for it`)
  }
  const c: Cursor = { pos: 0, split: new LineSplitter() }
  const out: Buffer[] = []
  if (cur !== null && o.last !== null) {
    const size = (await cur.fh.stat()).size
    c.pos = await startOfLast(cur.fh, size, o.last, o.selects)
  }
  let gone = false
  try {
    for (;;) {
      if (cur !== null) {
        const size = (await cur.fh.stat()).size
        if (size < c.pos) {
          o.notice(`${path}: truncated; reading it from the start`)
          c.pos = 0
          c.split.reset()
        }
        yield * drain(cur.fh, c)
        if (!o.follow) {
          c.split.end(out)
          yield * out
          return
        }
      }
      if (o.signal.aborted) return
      let now: { dev: number, ino: number } | null = null
      try {
        now = await stat(path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw describe(path, err)
      }
      if (now === null) {
        if (!gone && cur !== null) o.notice(`${path}: moved away or removed; waiting for a new file by that name`)
        gone = true
      } else if (cur === null || now.dev !== cur.dev || now.ino !== cur.ino) {
        let next: Opened
        try {
          next = await openLog(path)
        } catch (err) {
          // Gone again between stat and open (a rotation in progress): look again next time.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') { if (!(await nap())) return; continue }
          throw describe(path, err)
        }
        if (cur !== null) {
          // The rest of the old file: lines written between our last read and the rotation.
          try {
            yield * drain(cur.fh, c)
          } catch (err) {
            await next.fh.close()
            throw err
          }
          c.split.end(out)
          yield * out
          out.length = 0
          await cur.fh.close()
          o.notice(`${path}: ${gone ? 'a new file appeared' : 'was replaced (rotated)'}; following the new file`)
        } else {
          o.notice(`${path}: appeared; following it`)
        }
        cur = next
        c.pos = 0
        gone = false
        continue
      }
      if (!(await nap())) return
    }
  } finally {
    if (cur !== null) await cur.fh.close().catch(() => {})
  }
}
