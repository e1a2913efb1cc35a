import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import {
  closeSync, constants, existsSync, fsyncSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readlinkSync, renameSync,
  rmSync, statSync, symlinkSync, writeFileSync, writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { loadRules } from '../config/index.js'
import { ConfigError, readLists, type FileText } from '../config/lists.js'
import { detectFormat, importList, type ListFormat } from '../config/import.js'
import { MAX_IMPORT_BYTES, MAX_POLICY_BYTES, readFileBytes, ReadError } from '../config/read.js'
import { askControl, ControlError } from '../control/index.js'
import { AigateError } from '../util/errors.js'
import { diffLists, diffText, entriesByVendor, type VendorDiff } from './diff.js'
import { fetchBytes, FetchError, type FetchOptions } from './fetch.js'
import { parseSources, type Source } from './sources.js'

/**
 * `aigate rules update`: fetch the lists sources.yaml names, verify, convert,
 * lint the whole new rules directory with the one validator, show the diff,
 * swap the directory and ask the running daemon to reload.
 *
 * Nothing touches the rules directory until every source is fetched,
 * verified and converted and the new directory lints clean: the new one is
 * written beside it (`.<name>.new-<pid>`, same file system, so rename(2) is
 * atomic), every file and the directory fsynced, then `<name>` becomes
 * `<name>.old` (the previous generation, replaced each time) and the new one
 * `<name>`. Between those two renames (microseconds) no `<name>` exists; the
 * daemon reads the directory only at start and on reload, which is asked
 * after the swap. A daemon that refuses the reload gets the old rules back.
 */

/** One line, the reason; exit 1. What fails leaves the rules directory as it was. */
export class UpdateError extends AigateError {
  override readonly name = 'UpdateError'
}

export interface UpdateOptions {
  readonly sourcesFile: string
  readonly rulesDir: string
  readonly policyFile: string
  readonly dryRun: boolean
  /** The daemon's control socket; null: do not ask it to reload. */
  readonly control: string | null
  readonly fetch: FetchOptions
  /** A line for the admin (progress, the diff, the outcome). */
  readonly say: (line: string) => void
}

export interface UpdateResult {
  readonly diff: readonly VendorDiff[]
  /** 'unchanged': nothing differs; 'dry-run': stopped after the diff; 'swapped': the new rules are in place. */
  readonly outcome: 'unchanged' | 'dry-run' | 'swapped'
  /** After a swap: the daemon's answer to reload, or null when none was asked or none runs. */
  readonly reloaded: unknown
}

/** The most files one v2fly source may pull in through include: (domain-list-community's deepest AI chain is ~10). */
export const MAX_INCLUDES = 64
/** A v2fly include name: a data/ file name (letters, digits, -, _, ., !), never a path. */
const INCLUDE_NAME = /^[a-z0-9][a-z0-9!_.-]*$/i

/** "first problem (and N more)": a list of problems as the one line an update fails with. */
export function oneLine (problems: readonly string[]): string {
  const first = problems[0] ?? 'unknown problem'
  return problems.length > 1 ? `${first} (and ${problems.length - 1} more)` : first
}

export async function runUpdate (opts: UpdateOptions): Promise<UpdateResult> {
  const sources = readSources(opts.sourcesFile)
  const lists = new Map<string, string>()
  for (const s of sources) lists.set(`${s.vendor}.txt`, await fetchSource(s, opts))

  const parent = dirname(opts.rulesDir)
  const name = basename(opts.rulesDir)
  const release = lock(parent)
  let fresh: string | null = null
  try {
    const oldTexts = existsSync(opts.rulesDir) ? readOld(opts.rulesDir) : []
    fresh = writeNewDir(opts.rulesDir, lists)
    lint(fresh, opts.policyFile)
    const diff = diffLists(entriesByVendor(oldTexts), entriesByVendor(readLists(fresh, [])))
    for (const l of diffText(diff)) opts.say(l)
    if (diff.length === 0) {
      opts.say(`rules unchanged: ${sources.length} source${sources.length === 1 ? '' : 's'}, the same lists as in ${opts.rulesDir}`)
      return { diff, outcome: 'unchanged', reloaded: null }
    }
    const added = diff.reduce((n, d) => n + d.added.length, 0)
    const removed = diff.reduce((n, d) => n + d.removed.length, 0)
    if (opts.dryRun) {
      opts.say(`dry run: ${diff.length} list${diff.length === 1 ? '' : 's'} would change (${added} added, ${removed} removed); ${opts.rulesDir} is left as it is`)
      return { diff, outcome: 'dry-run', reloaded: null }
    }
    const old = `${opts.rulesDir}.old`
    swap(opts.rulesDir, fresh, old)
    fresh = null
    opts.say(`${opts.rulesDir}: ${diff.length} list${diff.length === 1 ? '' : 's'} changed (${added} added, ${removed} removed); the previous rules are in ${old}`)
    const reloaded = await reload(opts, old)
    return { diff, outcome: 'swapped', reloaded }
  } finally {
    if (fresh !== null) rmSync(fresh, { recursive: true, force: true })
    release()
  }
}

function readSources (file: string): Source[] {
  let text: string
  try {
    text = readFileBytes(file, 'sources file', MAX_POLICY_BYTES).toString('utf8')
  } catch (err) {
    if (err instanceof ReadError) throw new UpdateError(err.code === 'ENOENT' ? `${file}: no sources file (copy rules/sources.example.yaml there, or give --sources)` : err.message)
    throw err
  }
  try {
    return parseSources(text, file)
  } catch (err) {
    if (err instanceof ConfigError) throw new UpdateError(oneLine(err.problems))
    throw err
  }
}

function sha256 (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/** Fetch, verify and convert one source into the text of its list file. */
async function fetchSource (s: Source, opts: UpdateOptions): Promise<string> {
  const where = `${s.vendor} (sources line ${s.line})`
  let body: Buffer
  try {
    body = await fetchBytes(s.url, opts.fetch)
  } catch (err) {
    if (err instanceof FetchError) throw new UpdateError(`${where}: ${err.message}`)
    throw err
  }
  const hash = sha256(body)
  if (s.pin.kind === 'sha256' && hash !== s.pin.sha256) {
    throw new UpdateError(`${where}: ${s.url.href}: sha256 mismatch: expected ${s.pin.sha256}, got ${hash} (${body.length} bytes)`)
  }
  const text = body.toString('utf8')
  if (text.includes('\u0000') || text.includes('\ufffd')) throw new UpdateError(`${where}: ${s.url.href}: not UTF-8 text`)
  const pinned = s.pin.kind === 'sha256' ? 'sha256 verified' : s.pin.kind === 'commit' ? `commit ${s.pin.commit.slice(0, 12)}` : 'follows latest, not pinned'
  opts.say(`fetched ${s.vendor}: ${s.url.href}, ${body.length} bytes, ${pinned}`)
  let format = s.format
  if (format === 'auto') {
    if (/^#\s*vendor:/m.test(text)) format = 'aigate'
    else {
      const d = detectFormat(text)
      if ('error' in d) throw new UpdateError(`${where}: ${s.url.href}: ${d.error.replace('give --format', 'give format: in the source')}`)
      format = d.format
    }
  }
  // Our own format is taken as published: lint checks it, headers and all.
  if (format === 'aigate') return text
  let includeDir: string | undefined
  try {
    if (format === 'v2fly') includeDir = await fetchIncludes(s, text, opts, where)
    const r = importList(text, format as ListFormat, { file: s.url.href, includeDir })
    if (r.entries.length === 0) {
      const first = r.skipped[0]
      throw new UpdateError(`${where}: ${s.url.href}: no entries as ${format}${first === undefined ? '' : ` (${r.skipped.length} lines skipped; line ${first.line}: ${first.reason})`}`)
    }
    if (r.skipped.length > 0) opts.say(`  ${s.vendor}: ${r.skipped.length} line${r.skipped.length === 1 ? '' : 's'} skipped (first: ${r.skipped[0]?.file ?? ''}:${r.skipped[0]?.line ?? 0}: ${r.skipped[0]?.reason ?? ''})`)
    if (r.exceptions.length > 0) opts.say(`  ${s.vendor}: ${r.exceptions.length} allow-exception${r.exceptions.length === 1 ? '' : 's'} not taken (they belong in the policy's allow:): ${r.exceptions.join(', ')}`)
    return [
      `# vendor: ${s.vendor}`,
      `# title: ${s.title}`,
      `# category: ${s.category}`,
      `# source: ${s.url.href} (${format}, sha256 ${hash}; written by aigate rules update)`,
      ...r.entries,
    ].join('\n') + '\n'
  } finally {
    if (includeDir !== undefined) rmSync(includeDir, { recursive: true, force: true })
  }
}

/**
 * The files a v2fly list includes, fetched from beside it into a private
 * directory for the importer. A sha256 pins only the top file, so a source
 * pinned that way may not include; one pinned by commit includes from the
 * same commit.
 */
async function fetchIncludes (s: Source, text: string, opts: UpdateOptions, where: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-v2fly-'))
  const seen = new Set<string>()
  const queue = [text]
  while (queue.length > 0) {
    for (const m of (queue.shift() as string).matchAll(/^\s*include:(\S+)/gm)) {
      const inc = m[1] as string
      if (seen.has(inc) || !INCLUDE_NAME.test(inc)) continue // the importer reports a bad name as a skipped line
      if (s.pin.kind === 'sha256') {
        rmSync(dir, { recursive: true, force: true })
        throw new UpdateError(`${where}: ${s.url.href} includes "${inc}", which a sha256 cannot pin: pin the source by commit: instead`)
      }
      if (seen.size >= MAX_INCLUDES) {
        rmSync(dir, { recursive: true, force: true })
        throw new UpdateError(`${where}: ${s.url.href}: more than ${MAX_INCLUDES} included files`)
      }
      seen.add(inc)
      let body: Buffer
      try {
        body = await fetchBytes(new URL(encodeURIComponent(inc), s.url), opts.fetch)
      } catch (err) {
        rmSync(dir, { recursive: true, force: true })
        if (err instanceof FetchError) throw new UpdateError(`${where}: include:${inc}: ${err.message}`)
        throw err
      }
      writeFileSync(join(dir, inc), body)
      queue.push(body.toString('utf8'))
    }
  }
  return dir
}

/** The current lists, as the loader would read them; an unreadable one is not in the diff (lint of the new directory reports it). */
function readOld (dir: string): FileText[] {
  return readLists(dir, [])
}

function fsyncPath (path: string): void {
  const fd = openSync(path, constants.O_RDONLY)
  try { fsyncSync(fd) } finally { closeSync(fd) }
}

/**
 * The new directory beside the old one: a copy of everything in it (lists no
 * source names, a README, links as links), then the fetched lists over their
 * names; each file and the directory fsynced.
 */
function writeNewDir (rulesDir: string, lists: ReadonlyMap<string, string>): string {
  const fresh = join(dirname(rulesDir), `.${basename(rulesDir)}.new-${process.pid}`)
  rmSync(fresh, { recursive: true, force: true })
  let mode = 0o755
  try { mode = statSync(rulesDir).mode & 0o7777 } catch { /* first update: no rules directory yet */ }
  try {
    mkdirSync(fresh, { mode })
    const put = (file: string, data: Buffer | string, fileMode: number): void => {
      const fd = openSync(join(fresh, file), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, fileMode)
      try {
        const b = typeof data === 'string' ? Buffer.from(data) : data
        for (let off = 0; off < b.length;) off += writeSync(fd, b, off)
        fsyncSync(fd)
      } finally { closeSync(fd) }
    }
    if (existsSync(rulesDir)) {
      for (const f of readdirSync(rulesDir)) {
        if (lists.has(f)) continue
        const p = join(rulesDir, f)
        const st = lstatSync(p)
        if (st.isSymbolicLink()) symlinkSync(readlinkSync(p), join(fresh, f))
        else if (st.isFile()) put(f, readFileBytes(p, 'rules file', MAX_IMPORT_BYTES), st.mode & 0o7777)
        else throw new UpdateError(`${p}: not a regular file or a link: a rules directory holds list files only`)
      }
    }
    for (const [f, text] of lists) put(f, text, 0o644)
    fsyncPath(fresh)
  } catch (err) {
    rmSync(fresh, { recursive: true, force: true })
    if (err instanceof AigateError) throw err
    throw new UpdateError(`${fresh}: cannot write the new rules: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  return fresh
}

/** The whole new directory with the policy, through the loader the daemon uses: overlaps between lists are errors here too. */
function lint (fresh: string, policyFile: string): void {
  try {
    loadRules(fresh, policyFile)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    const problems = err.problems.map((p) => p.split(`${fresh}/`).join('new '))
    throw new UpdateError(`the new rules do not lint, the old ones stay: ${oneLine(problems)}`)
  }
}

function swap (rulesDir: string, fresh: string, old: string): void {
  const had = existsSync(rulesDir)
  try {
    rmSync(old, { recursive: true, force: true })
    if (had) renameSync(rulesDir, old)
  } catch (err) {
    throw new UpdateError(`${rulesDir}: cannot move the old rules aside: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    renameSync(fresh, rulesDir)
  } catch (err) {
    if (had) renameSync(old, rulesDir)
    throw new UpdateError(`${rulesDir}: cannot put the new rules in place, the old ones stay: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  fsyncPath(dirname(rulesDir))
}

/** Put the previous generation back (the daemon refused the new rules). */
function unswap (rulesDir: string, old: string): void {
  const rejected = join(dirname(rulesDir), `.${basename(rulesDir)}.rejected-${process.pid}`)
  renameSync(rulesDir, rejected)
  renameSync(old, rulesDir)
  rmSync(rejected, { recursive: true, force: true })
  fsyncPath(dirname(rulesDir))
}

async function reload (opts: UpdateOptions, old: string): Promise<unknown> {
  if (opts.control === null) { opts.say('no reload asked (--control none): the daemon loads the new rules at its next start or reload'); return null }
  try {
    const r = await askControl(opts.control, 'reload', 30_000)
    const v = (r as { version?: unknown } | null)?.version
    opts.say(`the daemon reloaded the new rules${typeof v === 'string' ? ` (version ${v})` : ''}`)
    return r
  } catch (err) {
    if (!(err instanceof ControlError)) throw err
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
      opts.say(`no daemon answers at ${opts.control}: the new rules load when it starts`)
      return null
    }
    if (existsSync(old)) unswap(opts.rulesDir, old)
    throw new UpdateError(`the daemon did not take the new rules, the old ones are back in ${opts.rulesDir}: ${err.message}`)
  }
}

/**
 * One update at a time per rules directory (the timer and an admin): an
 * exclusive flock(2) on the directory that holds it, taken by flock(1) on a
 * descriptor we hold, as the firewall lock (fw/lock.ts); no lock file is
 * left behind, and the kernel drops the lock if we die.
 */
function lock (path: string): () => void {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY)
  } catch (err) {
    throw new UpdateError(`${path}: cannot take the update lock: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  const r = spawnSync('flock', ['-x', '-n', '-E', '75', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd], encoding: 'utf8' })
  if (r.error !== undefined || r.status !== 0) {
    closeSync(fd)
    throw new UpdateError(r.status === 75 ? `${path}: another rules update is running there` : `${path}: cannot take the update lock: ${r.error?.message ?? r.stderr.trim()}`)
  }
  return () => { closeSync(fd) }
}
