import { Writable } from 'node:stream'

/**
 * A pino destination that keeps every line, parsed (as pino's own tests'
 * `sink()`): tests assert on the JSON we really emit.
 */
export class LineSink extends Writable {
  readonly lines: Array<Record<string, any>> = []
  readonly raw: string[] = []
  #rest = ''
  override _write (chunk: Buffer, _enc: string, cb: () => void): void {
    const text = this.#rest + chunk.toString('utf8')
    const parts = text.split('\n')
    this.#rest = parts.pop() ?? ''
    for (const p of parts) {
      this.raw.push(p)
      this.lines.push(JSON.parse(p) as Record<string, any>)
    }
    cb()
  }
}
