import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Real server-side ClientHello readers and the hello mutations, shared by the
 * differential tests (test/unit/differential*.test.ts, issue 11): OpenSSL
 * through Python's ssl module (MemoryBIO server, sni_callback), and Go's
 * crypto/tls when a Go toolchain is installed (Debian golang-go). Each reads
 * one hex-encoded byte stream per line and answers `name<TAB>result` per line.
 */

/** One Python process reads hex lines on stdin and writes `name<TAB>result` per line. */
const PY = `
import ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
seen = []
ctx.sni_callback = lambda obj, name, c: seen.append(name)
out = []
for line in sys.stdin:
    data = bytes.fromhex(line.strip())
    seen.clear()
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_side=True)
    inc.write(data)
    try:
        obj.do_handshake(); res = 'answered'
    except ssl.SSLWantReadError:
        res = 'answered' if outg.pending > 0 else 'waiting'
    except ssl.SSLError as e:
        res = 'refused:' + str(e.reason)
    name = '-' if not seen else ('' if seen[0] is None else seen[0])
    out.append(name + '\\t' + res)
sys.stdout.write('\\n'.join(out) + '\\n')
`

/** The same with Go's crypto/tls: the name reaches GetConfigForClient only once the hello is read. */
const GO = `package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

type conn struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (c *conn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *conn) Write(p []byte) (int, error)        { return c.w.Write(p) }
func (c *conn) Close() error                       { return nil }
func (c *conn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *conn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *conn) SetDeadline(t time.Time) error      { return nil }
func (c *conn) SetReadDeadline(t time.Time) error  { return nil }
func (c *conn) SetWriteDeadline(t time.Time) error { return nil }

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	out := bufio.NewWriter(os.Stdout)
	for sc.Scan() {
		data, _ := hex.DecodeString(sc.Text())
		called, name := false, ""
		cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			called, name = true, h.ServerName
			return nil, errors.New("stop")
		}}
		err := tls.Server(&conn{r: bytes.NewReader(data)}, cfg).Handshake()
		if called {
			fmt.Fprintf(out, "%s\\tanswered\\n", name)
		} else {
			fmt.Fprintf(out, "-\\trefused:%v\\n", err)
		}
	}
	out.Flush()
}
`

export interface Server { name: string, read: (lines: string[]) => string[] | null }

/** OpenSSL via Python, with a throwaway certificate written to `dir`; a string says why it cannot run. */
export function opensslServer (dir: string): Server | string {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=aigate-test'], { encoding: 'utf8' })
  if (gen.status !== 0) return `openssl req failed: ${gen.error?.message ?? gen.stderr}`
  const probe = spawnSync('python3', ['-c', 'import ssl; print(ssl.OPENSSL_VERSION)'], { encoding: 'utf8' })
  if (probe.status !== 0) return 'python3 with ssl not available'
  return {
    name: probe.stdout.trim(),
    read: (lines) => {
      const r = spawnSync('python3', ['-c', PY, cert, key], { input: lines.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 26 })
      return r.status === 0 ? r.stdout.split('\n').slice(0, lines.length) : null
    },
  }
}

/** Go crypto/tls, built in `dir`; a string says why it cannot run. */
export function goServer (dir: string): Server | string {
  const src = join(dir, 'gosrv')
  spawnSync('mkdir', ['-p', src])
  writeFileSync(join(src, 'main.go'), GO)
  writeFileSync(join(src, 'go.mod'), 'module gosrv\n\ngo 1.19\n')
  const env = { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' }
  const build = spawnSync('go', ['build', '-o', join(src, 'gosrv'), '.'], { cwd: src, encoding: 'utf8', env })
  if (build.error !== undefined) return 'no Go toolchain (apt-get install golang-go)'
  if (build.status !== 0) return `go build failed: ${build.stderr}`
  const ver = spawnSync('go', ['version'], { encoding: 'utf8', env }).stdout.trim()
  return {
    name: `Go crypto/tls (${ver})`,
    read: (lines) => {
      const r = spawnSync(join(src, 'gosrv'), [], { input: lines.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 26 })
      return r.status === 0 ? r.stdout.split('\n').slice(0, lines.length) : null
    },
  }
}

// ---- building mutated openings from real hellos ----

export interface Parsed { fixed: Buffer, exts: Array<[number, Buffer]> }

/** Split a ClientHello body into the fields before the extensions and the extension list. */
export function split (hs: Buffer): Parsed {
  let p = 4 + 2 + 32
  p += 1 + (hs[p] as number)
  p += 2 + hs.readUInt16BE(p)
  p += 1 + (hs[p] as number)
  const fixed = hs.subarray(4, p)
  const extEnd = p + 2 + hs.readUInt16BE(p)
  const exts: Array<[number, Buffer]> = []
  for (let q = p + 2; q < extEnd;) {
    const len = hs.readUInt16BE(q + 2)
    exts.push([hs.readUInt16BE(q), hs.subarray(q + 4, q + 4 + len)])
    q += 4 + len
  }
  return { fixed, exts }
}

export function u16 (n: number): Buffer { return Buffer.from([n >> 8, n & 255]) }

export function join2 (fixed: Buffer, exts: Array<[number, Buffer]>): Buffer {
  const e = Buffer.concat(exts.map(([type, data]) => Buffer.concat([u16(type), u16(data.length), data])))
  const body = Buffer.concat([fixed, u16(e.length), e])
  return Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 255, body.length & 255]), body])
}

export function record (type: number, ver: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type, ver >> 8, ver & 255, data.length >> 8, data.length & 255]), data])
}

export const EXT_SNI = 0
const EXT_PADDING = 21
const EXT_PSK = 41

export function mutate (hello: Buffer, r: () => number): { bytes: Buffer, what: string } {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)] as T
  const what: string[] = []
  const { fixed, exts: orig } = split(hello.subarray(5))
  let exts = orig.filter(([type]) => type !== EXT_PADDING)
  const psk = exts.find(([type]) => type === EXT_PSK)
  exts = exts.filter(([type]) => type !== EXT_PSK)
  if (r() < 0.5) {
    for (let i = exts.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [exts[i], exts[j]] = [exts[j] as [number, Buffer], exts[i] as [number, Buffer]] }
    what.push('shuffled')
  }
  if (r() < 0.5) {
    const n = Math.floor(r() * 700)
    exts.splice(Math.floor(r() * (exts.length + 1)), 0, [EXT_PADDING, Buffer.alloc(n)])
    what.push(`pad${n}`)
  }
  if (r() < 0.5) {
    exts = exts.map(([type, data]) => {
      if (type !== EXT_SNI) return [type, data]
      const d = Buffer.from(data)
      for (let i = 5; i < d.length; i++) if (r() < 0.5 && (d[i] as number) >= 0x61 && (d[i] as number) <= 0x7a) d[i] = (d[i] as number) - 32
      return [type, d]
    })
    what.push('case')
  }
  if (psk !== undefined) exts.push(psk) // RFC 8446 §4.2.11: pre_shared_key comes last
  const hs = join2(fixed, exts)

  // Records a server might drop, or not.
  const warning = (): Buffer => record(21, pick([0x0301, 0x0303]), Buffer.from([1, pick([90, 40, 100, 112])]))
  const junk: Array<[string, () => Buffer]> = [
    ['warn', warning],
    ['close', () => record(21, 0x0303, Buffer.from([1, 0]))],
    ['fatal', () => record(21, 0x0303, Buffer.from([2, 40]))],
    ['emptyhs', () => record(22, pick([0x0301, 0x0303]), Buffer.alloc(0))],
    ['emptyccs', () => record(20, 0x0303, Buffer.alloc(0))],
    ['ccs', () => record(20, 0x0303, Buffer.from([1]))],
  ]
  const run = (): Buffer[] => {
    const u = r()
    if (u < 0.55) return []
    if (u < 0.75) { const k = 1 + Math.floor(r() * 3); what.push(`${k}warn`); return Array.from({ length: k }, warning) }
    if (u < 0.8) { const k = pick([16, 17]); what.push(`${k}warn`); return Array.from({ length: k }, warning) }
    if (u < 0.85) { const k = pick([32, 33]); what.push(`${k}empty`); return Array.from({ length: k }, () => record(22, 0x0303, Buffer.alloc(0))) }
    const [n, f] = pick(junk)
    what.push(n)
    return [f()]
  }
  const ver = (): number => { const v = pick([0x0301, 0x0301, 0x0303, 0x0300, 0x0302, 0x0001]); if (v === 0x0001) what.push('v0001'); return v }
  const parts: Buffer[] = [...run()]
  const pieces = r() < 0.4 ? 1 : 2 + Math.floor(r() * 6)
  if (pieces > 1) what.push(`${pieces}rec`)
  const cuts = new Set<number>()
  while (cuts.size < pieces - 1) cuts.add(1 + Math.floor(r() * (hs.length - 1)))
  const at = [0, ...[...cuts].sort((a, b) => a - b), hs.length]
  for (let i = 0; i + 1 < at.length; i++) {
    if (i > 0) parts.push(...run())
    // The record layer may cut the hello anywhere, and records may exceed nothing (2^14).
    let from = at[i] as number
    const to = at[i + 1] as number
    while (from < to) {
      const n = Math.min(to - from, 16384)
      parts.push(record(22, ver(), hs.subarray(from, from + n)))
      from += n
    }
  }
  return { bytes: Buffer.concat(parts), what: what.join(',') || 'as is' }
}

