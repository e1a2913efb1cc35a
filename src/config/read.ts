import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs'
import { AigateError } from '../util/errors.js'

/**
 * Reading the files an admin (or a list someone else wrote) points us at:
 * vendor lists, the policy, lists to import and the files they include.
 *
 * `readFileSync` would block for ever on a FIFO (`open` waits for a writer)
 * and read for ever from `/dev/zero` (its size is 0, so it reads to an EOF
 * that never comes). Here the file is opened with O_NONBLOCK, so opening a
 * FIFO returns at once, then `fstat` on the open descriptor (not `stat` on the
 * name, which could change in between) says what it is: anything but a
 * regular file is refused, naming its kind. A regular file is read up to a
 * cap, counted while reading (a /proc file says size 0, a file may grow).
 */

/** The most a vendor list may hold, 16 MiB (the largest shipped list is a few kB; public blocklists run to a few MB). */
export const MAX_LIST_BYTES = 16 << 20
/** The most a policy may hold, 1 MiB (a policy is a screenful of YAML). */
export const MAX_POLICY_BYTES = 1 << 20
/** The most `aigate rules import` reads from one file, 64 MiB (large hosts files are tens of MB). */
export const MAX_IMPORT_BYTES = 64 << 20

/** Why a file could not be read: `detail` is the text after "cannot read <what>: ". */
export class ReadError extends AigateError {
  override readonly name = 'ReadError'
  /** An errno name (ENOENT, EACCES...), or ENOTREG (not a regular file) or EFBIG (over the cap). */
  readonly code: string
  readonly detail: string
  constructor (file: string, what: string, code: string, detail: string) {
    super(`${file}: cannot read ${what}: ${detail}`)
    this.code = code
    this.detail = detail
  }
}

export interface ReadOptions {
  /** Also read a FIFO or socket (blocking, as the caller named it), still up to the cap. Default false. */
  readonly pipes?: boolean
}

/** "16 MiB", "1 MiB", "512 kiB". */
export function bytesText (n: number): string {
  return n >= 1 << 20 && n % (1 << 20) === 0 ? `${n / (1 << 20)} MiB` : n >= 1024 && n % 1024 === 0 ? `${n / 1024} kiB` : `${n} bytes`
}

function kind (st: Stats): string {
  if (st.isDirectory()) return 'is a directory'
  if (st.isFIFO()) return 'not a regular file (a FIFO)'
  if (st.isCharacterDevice()) return 'not a regular file (a character device)'
  if (st.isBlockDevice()) return 'not a regular file (a block device)'
  if (st.isSocket()) return 'not a regular file (a socket)'
  return 'not a regular file'
}

/**
 * The UTF-8 text of `file`, a regular file of at most `max` bytes. Throws
 * ReadError with a message `<file>: cannot read <what>: <detail>`.
 */
export function readTextFile (file: string, what: string, max: number, opts: ReadOptions = {}): string {
  return readFileBytes(file, what, max, opts).toString('utf8')
}

/** The bytes of `file`, read as readTextFile reads (a regular file, at most `max` bytes); for a hash over exactly what was read. */
export function readFileBytes (file: string, what: string, max: number, opts: ReadOptions = {}): Buffer {
  const fail = (code: string, detail: string): ReadError => new ReadError(file, what, code, detail)
  let fd: number
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
    throw fail(code, code)
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) {
      const pipe = st.isFIFO() || st.isSocket()
      if (!(pipe && opts.pipes === true)) throw fail(st.isDirectory() ? 'EISDIR' : 'ENOTREG', kind(st))
      // Node cannot clear O_NONBLOCK on a descriptor; open the pipe again, blocking.
      closeSync(fd)
      fd = -1
      try {
        fd = openSync(file, constants.O_RDONLY | constants.O_NOCTTY)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
        throw fail(code, code)
      }
    }
    const tooBig = (): ReadError => fail('EFBIG', `larger than ${bytesText(max)}, the most a ${what} may hold`)
    if (st.isFile() && st.size > max) throw tooBig()
    const chunks: Buffer[] = []
    let total = 0
    // One byte past the cap tells "exactly the cap" from "more".
    let buf = Buffer.allocUnsafe(Math.min(max + 1, st.isFile() && st.size > 0 ? st.size + 1 : 64 * 1024))
    for (;;) {
      let n: number
      try {
        n = readSync(fd, buf, 0, buf.length, null)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
        throw fail(code, code)
      }
      if (n === 0) break
      total += n
      if (total > max) throw tooBig()
      chunks.push(buf.subarray(0, n))
      if (n === buf.length) buf = Buffer.allocUnsafe(Math.min(max + 1 - total, 64 * 1024))
      else buf = buf.subarray(n)
    }
    return Buffer.concat(chunks, total)
  } finally {
    if (fd >= 0) closeSync(fd)
  }
}
