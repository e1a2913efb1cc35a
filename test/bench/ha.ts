import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HaSandbox, type Gw } from '../../src/demo/ha-sandbox.js'
import { startServers, probe } from '../../src/demo/servers.js'
import { waitUntil } from '../../src/demo/netns.js'
import { DEFAULT_POLICY, DEFAULT_RULES_DIR } from '../../src/config/index.js'

/**
 * `npm run bench:ha` (root): how long a failover of the aigate pair takes and
 * what it loses, in the HA sandbox (src/demo/ha-sandbox.ts). For each VRRP
 * advert interval, four moves: gwa's links cut (gwb must notice the silence:
 * about 3 adverts), gwa's links back (gwa preempts), keepalived on gwa
 * stopped (it hands over at once: a priority-0 advert), keepalived started
 * again. During each move the client sends the server a numbered UDP datagram
 * every 10 ms and the server echoes it (port 7, which aigate does not queue:
 * this is the forwarding path itself) while a
 * paced HTTPS download runs; the outage is the longest gap between two
 * echoes, the loss the datagrams without one. The download must end with one
 * TCP connection and every byte.
 *
 *   npm run bench:ha                 # advert 1 s (keepalived's default) and 0.1 s
 *   npm run bench:ha -- 0.5          # one advert interval
 */

const PING_MS = 10
const DOWNLOAD_BYTES = 16 * 1048576

interface Row { advert: number, move: string, to: Gw, outageMs: number, lost: number, sent: number, moveMs: number }

async function sleep (ms: number): Promise<void> { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** UDP echo on the server (port 7: not a port aigate queues, so this is the forwarding path itself). */
const ECHO = "const s = require('node:dgram').createSocket('udp4'); s.on('message', (m, r) => s.send(m, r.port, r.address)); s.bind(7)"
/** Send a numbered datagram every PING_MS ms; print "seq ms" per echo, "sent N" on SIGINT. */
const PINGER = `const s = require('node:dgram').createSocket('udp4'); let n = 0
s.on('message', (m) => process.stdout.write(m.readUInt32BE(0) + ' ' + Date.now() + '\\n'))
const t = setInterval(() => { const b = Buffer.alloc(64); b.writeUInt32BE(n++, 0); s.send(b, 7, process.argv[1]) }, Number(process.argv[2]))
process.on('SIGINT', () => { clearInterval(t); setTimeout(() => { process.stdout.write('sent ' + n + '\\n'); process.exit(0) }, 300) })`

/** Ping the server from the client every PING_MS until `stop` resolves; replies as [seq, time ms]. */
async function pingDuring (sb: HaSandbox, stop: Promise<unknown>): Promise<{ sent: number, replies: Array<[number, number]> }> {
  const p = sb.spawn(sb.cli, process.execPath, ['-e', PINGER, sb.addrs.server, String(PING_MS)])
  let out = ''
  p.stdout?.on('data', (b: Buffer) => { out += b.toString() })
  const exited = new Promise((resolve) => p.on('exit', resolve))
  await stop
  await sleep(500)
  p.kill('SIGINT')
  await exited
  const replies: Array<[number, number]> = []
  for (const m of out.matchAll(/^(\d+) (\d+)$/gm)) replies.push([Number(m[1]), Number(m[2])])
  const sent = Number(/^sent (\d+)$/m.exec(out)?.[1] ?? 0)
  return { sent, replies }
}

async function measure (sb: HaSandbox, advert: number, move: string, to: Gw, act: () => Promise<void> | void): Promise<Row> {
  let moveMs = 0
  const done = (async () => {
    await sleep(1000)
    const t0 = Date.now()
    await act()
    if (!await waitUntil(() => sb.holder() === to, 15_000, 10)) throw new Error(`${move}: gw${to} did not take the addresses`)
    moveMs = Date.now() - t0
    await sleep(1500)
  })()
  const { sent, replies } = await pingDuring(sb, done)
  let outageMs = 0
  for (let i = 1; i < replies.length; i++) outageMs = Math.max(outageMs, (replies[i]?.[1] ?? 0) - (replies[i - 1]?.[1] ?? 0))
  return { advert, move, to, outageMs: Math.round(outageMs), lost: sent - replies.length, sent, moveMs }
}

async function pair (advert: number, net: number): Promise<Row[]> {
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-bench-ha-'))
  const sb = new HaSandbox(`agbh${process.pid % 10000}`, net, tmp)
  const onSignal = (): void => { sb.destroy(); rmSync(tmp, { recursive: true, force: true }); process.exit(130) }
  process.once('SIGINT', onSignal)
  try {
    sb.create()
    startServers(sb, tmp)
    writeFileSync(join(tmp, 'big.bin'), Buffer.alloc(DOWNLOAD_BYTES, 0x62))
    sb.spawn(sb.srv, process.execPath, ['-e', ECHO])
    await sb.start({ rulesDir: DEFAULT_RULES_DIR, policyFile: DEFAULT_POLICY, advertSec: advert })
    if (!await waitUntil(() => probe(sb, sb.addrs.server, 443), 10_000)) throw new Error('servers did not start')
    // A paced download across all four moves (16 MiB at 512 KiB/s: 32 s).
    const dl = sb.spawn(sb.cli, 'curl', ['-sk', '-o', '/dev/null', '--limit-rate', '512K', '--max-time', '120', '-w', '%{http_code} %{num_connects} %{size_download}',
      '--resolve', `www.example.com:443:${sb.addrs.server}`, 'https://www.example.com/big.bin'])
    let dlOut = ''
    dl.stdout?.on('data', (b: Buffer) => { dlOut += b.toString() })
    const dlDone = new Promise<number | null>((resolve) => dl.on('exit', resolve))
    const rows: Row[] = []
    rows.push(await measure(sb, advert, 'gwa links cut', 'b', () => { sb.links('a', false) }))
    await sleep(5000) // conntrackd's PurgeTimeout on gwa (its stale entries go before it takes over again)
    rows.push(await measure(sb, advert, 'gwa links back', 'a', () => { sb.links('a', true) }))
    rows.push(await measure(sb, advert, 'keepalived stopped on gwa', 'b', async () => { await sb.stopKeepalived('a') }))
    await sleep(5000)
    rows.push(await measure(sb, advert, 'keepalived started on gwa', 'a', () => { sb.startKeepalived('a') }))
    const code = await dlDone
    const [http, connects, size] = dlOut.split(' ')
    const ok = code === 0 && http === '200' && connects === '1' && Number(size) === DOWNLOAD_BYTES
    process.stderr.write(`advert ${advert} s: download across the four moves: ${ok ? 'complete, one connection' : `FAILED (curl exit ${String(code)}, ${dlOut})`}\n`)
    if (!ok) process.exitCode = 1
    return rows
  } finally {
    process.off('SIGINT', onSignal)
    sb.destroy()
    rmSync(tmp, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench:ha: run as root (it builds network namespaces)\n')
    process.exitCode = 1
    return
  }
  const adverts = process.argv.slice(2).map(Number)
  const list = adverts.length > 0 ? adverts : [1, 0.1]
  const rows: Row[] = []
  for (const [i, a] of list.entries()) rows.push(...await pair(a, 232 + i))
  process.stdout.write(`\nfailover of the aigate pair: a UDP datagram every ${PING_MS} ms client -> server -> client, outage = longest gap between echoes\n\n`)
  process.stdout.write('| advert | move | addresses moved after | outage | datagrams lost |\n|---|---|---|---|---|\n')
  for (const r of rows) {
    process.stdout.write(`| ${r.advert} s | ${r.move} (to gw${r.to}) | ${r.moveMs} ms | ${r.outageMs} ms | ${r.lost} of ${r.sent} |\n`)
  }
}

await main()
