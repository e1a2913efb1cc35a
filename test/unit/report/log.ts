import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FIXTURES } from '../../helpers/fixtures.js'
import { eth, pcapOf, tcp4 } from '../../helpers/packets.js'

/**
 * A decision log made the way an analyst makes one offline: the built CLI's
 * `aigate classify` on every fixture capture (test/fixtures/pcap), plus one
 * capture built here from two real Chromium hellos on one TCP flow
 * (www.example.com, then claude.ai: a second hello naming another host, an
 * evasion), so the log has blocks, monitors, allows and an evasion. The
 * built capture's packets are stamped inside the fixtures' time span.
 */

export const BIN = fileURLToPath(new URL('../../../bin/aigate.js', import.meta.url))

/** 2026-11-25T21:30:00Z, between the clients and chromium captures. */
const EVASION_SECONDS = 1795642200

/** The second-hello capture, its records' seconds rewritten (pcapOf stamps 2023). */
function evasionCapture (): Buffer {
  const a = readFileSync(join(FIXTURES, 'tls', 'chromium-156-www.example.com.bin'))
  const b = readFileSync(join(FIXTURES, 'tls', 'chromium-156-claude.ai.bin'))
  const t = { src: '10.9.0.8', dst: '10.9.0.1', sport: 50001, dport: 443 }
  const pcap = pcapOf([eth(tcp4(t, 999, Buffer.alloc(0), 0x02)), eth(tcp4(t, 1000, a)), eth(tcp4(t, 1000 + a.length, b))])
  for (let p = 24; p < pcap.length; p += 16 + pcap.readUInt32LE(p + 8)) pcap.writeUInt32LE(EVASION_SECONDS, p)
  return pcap
}

export interface FixtureLog {
  dir: string
  /** The log file. */
  path: string
  text: string
  lines: string[]
  cleanup: () => void
}

export function classify (file: string): string {
  const r = spawnSync(process.execPath, [BIN, 'classify', file], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`aigate classify ${file}: ${r.stderr}`)
  return r.stdout
}

export function fixtureLog (): FixtureLog {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-report-'))
  const evasion = join(dir, 'second-hello.pcap')
  writeFileSync(evasion, evasionCapture())
  const captures = readdirSync(join(FIXTURES, 'pcap')).filter((f) => /\.pcap(ng)?$/.test(f)).sort().map((f) => join(FIXTURES, 'pcap', f))
  const text = [...captures, evasion].map(classify).join('')
  const path = join(dir, 'decisions.log')
  writeFileSync(path, text)
  return { dir, path, text, lines: text.split('\n').filter((l) => l !== ''), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** `aigate report ...` through the built CLI. */
export function report (args: string[], input?: string): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'report', ...args], { encoding: 'utf8', timeout: 120_000, ...(input === undefined ? {} : { input }) })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}
