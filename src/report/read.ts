import { createReadStream, openSync, readSync, closeSync } from 'node:fs'
import { createGunzip } from 'node:zlib'
import type { Readable } from 'node:stream'

/**
 * Lines of a decision log, plain or gzip, streamed: memory stays bounded
 * whatever the file's size (one read chunk, one line). Not readline: it keeps
 * a line without a newline whole, so one gigabyte without a newline (a
 * corrupt or hostile file) would be one gigabyte of string; here a line
 * longer than MAX_LINE_BYTES is skipped and reported instead.
 */

/**
 * Longest line read. A decision line is ~700 bytes; the longest the encoder
 * can write (16 ALPN protocols of 64 bytes, each byte \u-escaped) is ~7 KiB.
 */
export const MAX_LINE_BYTES = 1 << 20
/** Read size from disk. */
const CHUNK = 1 << 20

/** gzip member header, RFC 1952 §2.3.1 (ID1 ID2). */
const GZIP_MAGIC = [0x1f, 0x8b]

export interface FileRead {
  path: string
  /** Bytes read from the file (compressed bytes for gzip). */
  bytes: number
  lines: number
  gzip: boolean
  /** Lines longer than MAX_LINE_BYTES, skipped. */
  tooLong: number
  /** Why reading stopped early (a corrupt or cut gzip stream, an I/O error). */
  error?: string
}

/** Whether a file starts with the gzip magic (the name's extension is not trusted: rotated logs are named many ways). */
export function isGzip (path: string): boolean {
  const fd = openSync(path, 'r')
  try {
    const b = Buffer.alloc(2)
    return readSync(fd, b, 0, 2, 0) === 2 && b[0] === GZIP_MAGIC[0] && b[1] === GZIP_MAGIC[1]
  } finally {
    closeSync(fd)
  }
}

/** A line's text, or null for a line longer than MAX_LINE_BYTES (skipped). */
export type OnLine = (text: string | null, lineNo: number) => void

/**
 * Split a stream of bytes into lines (LF, an optional CR before it removed)
 * and hand each non-empty one to `onLine`, with its number (1-based, empty lines counted). A last line without a newline is
 * a line too (a log cut mid-write shows as one bad line, not a lost one).
 */
export async function splitLines (src: AsyncIterable<Buffer>, onLine: OnLine, r: FileRead, onChunk?: (c: Buffer) => void): Promise<void> {
  let carry: Buffer[] = []
  let carried = 0
  let skipping = false
  const tooLong = (): void => {
    r.lines++
    r.tooLong++
    onLine(null, r.lines)
  }
  const emit = (b: Buffer, s: number, e: number): void => {
    r.lines++
    if (e > s && b[e - 1] === 0x0d) e--
    if (e > s) onLine(b.toString('utf8', s, e), r.lines)
  }
  for await (const chunk of src) {
    onChunk?.(chunk)
    let s = 0
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, s)) {
      if (skipping) {
        tooLong()
        skipping = false
      } else if (carried > 0) {
        carry.push(chunk.subarray(s, nl))
        const line = Buffer.concat(carry, carried + nl - s)
        carry = []
        carried = 0
        if (line.length > MAX_LINE_BYTES) tooLong(); else emit(line, 0, line.length)
      } else if (nl - s > MAX_LINE_BYTES) {
        tooLong()
      } else {
        emit(chunk, s, nl)
      }
      s = nl + 1
    }
    if (s < chunk.length && !skipping) {
      carried += chunk.length - s
      if (carried > MAX_LINE_BYTES) {
        carry = []
        carried = 0
        skipping = true
      } else {
        // A copy: the stream may reuse the chunk's memory.
        carry.push(Buffer.from(chunk.subarray(s)))
      }
    }
  }
  if (skipping) tooLong(); else if (carried > 0) {
    const line = Buffer.concat(carry, carried)
    emit(line, 0, line.length)
  }
}

/**
 * Read one log file line by line. `onBytes` hears the bytes read from disk so
 * far (for a progress bar). A gzip stream that is corrupt or cut short ends
 * the file with `error` set; the lines before it count.
 */
export async function readLog (path: string, onLine: OnLine, onBytes?: (bytes: number) => void): Promise<FileRead> {
  const gzip = path !== '-' && isGzip(path)
  const r: FileRead = { path, bytes: 0, lines: 0, gzip, tooLong: 0 }
  const file = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: CHUNK })
  // Bytes from disk: a file stream counts them (compressed, for gzip); stdin is read as it comes.
  const fromDisk = 'bytesRead' in file
    ? (): void => { r.bytes = file.bytesRead; onBytes?.(r.bytes) }
    : (c: Buffer): void => { r.bytes += c.length; onBytes?.(r.bytes) }
  let src: Readable = file
  if (gzip) {
    const gunzip = createGunzip({ chunkSize: CHUNK })
    // pipe() does not pass the source's errors on.
    file.on('error', (err: Error) => gunzip.destroy(err))
    src = file.pipe(gunzip)
  }
  try {
    await splitLines(src, onLine, r, fromDisk)
    if ('bytesRead' in file) r.bytes = file.bytesRead
  } catch (err) {
    r.error = err instanceof Error ? err.message : String(err)
    file.destroy()
  }
  return r
}
