import type { Command } from 'commander'
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { loadRuleset } from '../../config/index.js'
import { Classifier } from '../../classify/index.js'
import { DecisionLog, FdLines } from '../../log/index.js'
import { CaptureError } from '../../source/pcapfile.js'
import { classifyFile } from '../../source/classify-file.js'
import { unreadText } from '../../source/frames.js'
import { cacheSizeOption, rulesOptions } from '../shared.js'

/** `aigate classify <file>`: replay a capture through the classifier, decision lines on stdout. */

/** Stdout could not be written (a closed pipe ends a replay quietly). */
class OutputClosed extends Error {
  readonly code: string
  constructor (code: string) {
    super(`output closed (${code})`)
    this.code = code
  }
}

/** Write out the lines gathered so far; a closed stdout is not worth more than the error already at hand. */
function flushKeeping (sink: FdLines): void {
  try {
    sink.flush()
  } catch (err) {
    if (!(err instanceof OutputClosed)) throw err
  }
}

/** The most `classify` copies from stdin or a pipe, 1 GiB (a file of any size is read in place). */
export const MAX_PIPED_CAPTURE = 1 << 30

/**
 * A capture on stdin (`-`) or in a pipe (`<(…)`, a FIFO) is first copied into
 * a private file: the format check and libpcap read by position, which a pipe
 * cannot do. The copy lives in a directory made by mkdtemp (mode 0700) under
 * $TMPDIR and is removed by `done`.
 */
async function seekableCapture (file: string): Promise<{ path: string, done: () => void }> {
  let piped = file === '-'
  if (!piped) {
    try {
      const st = statSync(file)
      piped = st.isFIFO()
    } catch {
      // Missing or unreadable: the capture reader says so, with its own words.
    }
  }
  if (!piped) return { path: file, done: () => {} }
  const dir = mkdtempSync(join(tmpdir(), 'aigate-classify-'))
  const done = (): void => { rmSync(dir, { recursive: true, force: true }) }
  const path = join(dir, 'capture')
  let bytes = 0
  const limit = new Transform({
    transform (chunk: Buffer, _enc, next) {
      bytes += chunk.length
      if (bytes > MAX_PIPED_CAPTURE) next(new CaptureError('EFBIG', `${file}: more than 1 GiB from a pipe; write the capture to a file and classify that`))
      else next(null, chunk)
    },
  })
  try {
    await pipeline(file === '-' ? process.stdin : createReadStream(file), limit, createWriteStream(path, { flags: 'wx', mode: 0o600 }))
  } catch (err) {
    done()
    if (err instanceof CaptureError) throw err
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
    throw new CaptureError(code, `${file}: cannot read: ${code}`)
  }
  return { path, done }
}

export function registerClassify (program: Command): void {
  rulesOptions(program.command('classify')
    .description('replay a capture file (pcap or pcapng) through the classifier; one JSON decision line per name seen, on stdout')
    .argument('<file>', 'capture file; - (stdin) or a pipe is first copied to a private temporary file (at most 1 GiB)')
    .addOption(cacheSizeOption('decision cache entries'))
    .option('-q, --quiet', 'no summary on stderr'))
    .action(async (file: string, opts: { rules: string, policy: string, cacheSize: number, quiet?: boolean }) => {
      const classifier = new Classifier(loadRuleset(opts.rules, opts.policy), opts.cacheSize)
      const sink = new FdLines(1)
      // The reader went away (`aigate classify x.pcap | head`): stop quietly.
      sink.onError = (e) => { throw new OutputClosed(e.code) }
      // Offline the lines come from the capture, not from the analyst's host (observer.name).
      const log = new DecisionLog(sink, undefined, { name: file === '-' ? 'stdin' : basename(file) })
      const t0 = process.hrtime.bigint()
      const input = await seekableCapture(file)
      try {
        const s = await classifyFile(input.path, classifier, log)
        sink.flush()
        const secs = Number(process.hrtime.bigint() - t0) / 1e9
        if (opts.quiet !== true) {
          // What was seen and left unread for a reason an analyst may want to chase.
          const fakes = classifier.flows.stats.implausible
          const extra = fakes > 0 ? `, ${fakes} fake segments ignored on allowed flows` : ''
          process.stderr.write(`aigate: ${file}: ${s.packets} packets, ${s.decisions} decisions, ` +
            `${classifier.cache.hits} cache hits, ${unreadText(s)}${extra}, ${secs.toFixed(3)} s\n`)
        }
      } catch (err) {
        if (!(err instanceof OutputClosed)) {
          // A capture cut off by a killed tcpdump is the usual case: the
          // decisions made before the bad record still go out, then the error.
          flushKeeping(sink)
          // Messages name the file as given, not the private copy.
          if (err instanceof CaptureError && input.path !== file) throw new CaptureError(err.code, err.message.replaceAll(input.path, file))
          throw err
        }
        if (err.code !== 'EPIPE') throw new CaptureError(err.code, `cannot write to stdout (${err.code})`)
      } finally {
        input.done()
      }
    })
}
