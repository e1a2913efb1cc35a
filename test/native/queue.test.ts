// The NFQUEUE addon against the real kernel. The test builds a network
// namespace with iptables NFQUEUE rules on loopback, runs the queue side in a
// child Node process inside it (fixtures/queue-child.ts: a netlink socket
// belongs to the namespace of the process that opens it), and sends and
// receives UDP with python3 inside the same namespace. The child serves its
// queues as a daemon worker does: serveWith, then wait/drain blocking its thread.
import t from 'tap'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import {
  MARK_KEEP,
  NF_ACCEPT,
  NF_DROP,
  NF_REPEAT,
  PKT_TRUNCATED,
  VERDICT_UNSET,
} from '../../src/queue/index.js'
import { MARK_ACCEPT, AIGATE_MARK_MASK } from '../../src/verdict/marks.js'

const ADDON = fileURLToPath(new URL('../../native/build/Release/aigate_nfq.node', import.meta.url))
const CHILD = fileURLToPath(new URL('./fixtures/queue-child.ts', import.meta.url))
const NS = `aigate-nfq-${process.pid}`
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
/** iptables (nft backend on Debian 12) by default; AIGATE_TEST_IPTABLES=iptables-legacy for the other. */
const IPTABLES = process.env.AIGATE_TEST_IPTABLES ?? 'iptables'
const NF_INET_LOCAL_OUT = 3
const ETH_P_IP = 0x0800
const LO_IFINDEX = 1
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']

// Ports and queues: each scenario has its own, so iptables counters stay apart.
const PORT_MAIN = 9999 // -> queue 7
const PORT_MARK = 9998 // -> queue 8; a mark rule sits before the NFQUEUE rule
const PORT_TRUNC = 9997 // -> queue 9
const PORT_CAP = 9996 // -> queue 10
const PORT_BIG = 9995 // -> queue 13

const SENDER = `
import socket, sys
port, n, size, tag = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# Queued packets stay charged to this socket's send buffer until their
# verdict; a big one (SO_SNDBUFFORCE, root) keeps a burst from blocking.
s.setsockopt(socket.SOL_SOCKET, 32, 64 << 20)
for i in range(n):
    p = ('%s-%05d-' % (tag, i)).encode()
    s.sendto((p + b'x' * size)[:max(size, len(p))], ('127.0.0.1', port))
`

const RECEIVER = `
import json, socket, sys
port, expect, idle = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
r.bind(('127.0.0.1', port))
r.settimeout(idle)
print('ready', flush=True)
got = []
while expect == 0 or len(got) < expect:
    try:
        got.append(r.recv(65535).hex())
    except socket.timeout:
        break
print(json.dumps(got), flush=True)
`

/** The payloads SENDER sends, as hex. */
const payloads = (n: number, size: number, tag: string): string[] =>
  Array.from({ length: n }, (_, i) => {
    const p = Buffer.from(`${tag}-${String(i).padStart(5, '0')}-`)
    return Buffer.concat([p, Buffer.alloc(Math.max(size - p.length, 0), 'x')]).toString('hex')
  })

const sh = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 })
const ns = (...args: string[]): string => sh('ip', ['netns', 'exec', NS, ...args])
const send = (port: number, n: number, size: number, tag: string): void => {
  ns(PYTHON, '-c', SENDER, String(port), String(n), String(size), tag)
}

/** Starts a UDP receiver in the namespace; resolves with the payloads (hex) it got. */
async function receiver(port: number, expect: number, idle = 3): Promise<{ done: Promise<string[]> }> {
  const p = spawn('ip', ['netns', 'exec', NS, PYTHON, '-c', RECEIVER, String(port), String(expect), String(idle)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]()
  const first = await lines.next()
  if (first.value !== 'ready') throw new Error(`receiver did not start: ${String(first.value)}`)
  return {
    done: (async () => {
      const last = await lines.next()
      return JSON.parse(String(last.value)) as string[]
    })(),
  }
}

/** iptables packet counter of the OUTPUT rule whose listing contains every needle. */
function counter(...needles: string[]): number {
  const lines = ns(IPTABLES, '-L', 'OUTPUT', '-v', '-x', '-n').split('\n')
  const line = lines.find((l) => needles.every((n) => l.includes(n)))
  if (!line) throw new Error(`no rule with ${needles.join(', ')} in:\n${lines.join('\n')}`)
  return Number(line.trim().split(/\s+/)[0])
}

interface Packet {
  id: number
  mark: number
  len: number
  origLen: number
  indev: number
  outdev: number
  info: number
  hex: string
}
interface Reply {
  id: number
  ok: boolean
  error?: { name: string; message: string; code?: string; errno?: number; syscall?: string; isQueueError: boolean }
  stats?: Record<string, number>
  closed?: boolean
}
interface Served extends Reply {
  handled: number
  batches: { count: number; packets: Packet[] }[]
}
interface ServeArgs {
  name: string
  verdict: number
  /** Serve until this many packets were handled ... */
  n: number
  /** ... and then this long more (to see packets that should not come). */
  lingerMs?: number
  mark?: number
  mode?: 'hold-first' | 'unknown-id'
}

/** A queue-child.ts process in the namespace, driven by JSON lines. */
class Child {
  readonly proc: ChildProcess
  #next = 1
  #waiting = new Map<number, (r: Reply) => void>()
  ready: Promise<void>

  constructor(prefix: string[] = []) {
    const loader = import.meta.resolve('@tapjs/typescript/import')
    this.proc = spawn('ip', ['netns', 'exec', NS, ...prefix, process.execPath, '--expose-gc', `--import=${loader}`, CHILD], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
    })
    let ready: () => void
    this.ready = new Promise((resolve) => (ready = resolve))
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as Reply & { event?: string }
      if (msg.event === 'ready') ready()
      else this.#waiting.get(msg.id)?.(msg)
    })
  }

  call(op: string, args: object = {}): Promise<Reply> {
    const id = this.#next++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child: no reply to ${op}`)), 30_000)
      this.#waiting.set(id, (r) => {
        clearTimeout(timer)
        resolve(r)
      })
      this.proc.stdin!.write(JSON.stringify({ id, op, ...args }) + '\n')
    })
  }

  /**
   * Serves a queue as a daemon worker does until `n` packets were handled
   * (10 s at most); the reply has the batches, packets in arrival order.
   */
  serve(args: ServeArgs): Promise<Served> {
    return this.call('serve', args) as Promise<Served>
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL')
  }
}

/** IPv4 + UDP view of a packet the queue handed over. */
function udp(hex: string): { version: number; totalLength: number; protocol: number; dport: number; payload: string } {
  const b = Buffer.from(hex, 'hex')
  const ihl = (b[0]! & 0x0f) * 4
  return {
    version: b[0]! >> 4,
    totalLength: b.readUInt16BE(2),
    protocol: b[9]!,
    dport: b.readUInt16BE(ihl + 2),
    payload: b.subarray(ihl + 8).toString('hex'),
  }
}

const isRoot = process.getuid?.() === 0
t.test('NFQUEUE addon in a network namespace', { skip: isRoot ? false : 'needs root: creates a network namespace and iptables rules' }, async (t) => {
  t.ok(existsSync(ADDON), `native addon built (${ADDON}); run npm run build:native`)
  if (!existsSync(ADDON)) return

  try {
    sh('ip', ['netns', 'del', NS])
  } catch {
    // not there: fine
  }
  sh('ip', ['netns', 'add', NS])
  const children: Child[] = []
  t.teardown(() => {
    for (const c of children) c.kill()
    sh('ip', ['netns', 'del', NS])
  })
  ns('ip', 'link', 'set', 'lo', 'up')
  const rule = (...args: string[]): void => void ns(IPTABLES, '-A', 'OUTPUT', '-p', 'udp', ...args)
  rule('--dport', String(PORT_MAIN), '-j', 'NFQUEUE', '--queue-num', '7')
  rule('--dport', String(PORT_MARK), '-m', 'mark', '--mark', `0x${MARK_ACCEPT.toString(16)}/0x${AIGATE_MARK_MASK.toString(16)}`, '-j', 'ACCEPT')
  rule('--dport', String(PORT_MARK), '-j', 'NFQUEUE', '--queue-num', '8')
  rule('--dport', String(PORT_TRUNC), '-j', 'NFQUEUE', '--queue-num', '9')
  rule('--dport', String(PORT_CAP), '-j', 'NFQUEUE', '--queue-num', '10')
  rule('--dport', String(PORT_BIG), '-j', 'NFQUEUE', '--queue-num', '13')

  const child = (prefix?: string[]): Child => {
    const c = new Child(prefix)
    children.push(c)
    return c
  }
  const c = child()
  await c.ready
  t.same(await c.call('open', { name: 'main', queue: 7 }), { id: 1, ok: true }, 'queue 7 opens')

  await t.test('packets arrive with their bytes; NF_ACCEPT lets them through', async (t) => {
    const sent = payloads(5, 40, 'accept')
    const r = await receiver(PORT_MAIN, 5)
    const served = c.serve({ name: 'main', verdict: NF_ACCEPT, n: 5 }) // blocks in wait() until they come
    send(PORT_MAIN, 5, 40, 'accept')
    const reply = await served
    t.ok(reply.ok)
    const pkts = reply.batches.flatMap((b) => b.packets)
    t.equal(pkts.length, 5, 'exactly the sent packets were queued')
    for (const [i, p] of pkts.entries()) {
      const u = udp(p.hex)
      t.match(u, { version: 4, protocol: 17, dport: PORT_MAIN }, `packet ${i}: IPv4/UDP to the queued port`)
      t.equal(u.payload, sent[i], `packet ${i}: the sent payload, byte for byte`)
      t.equal(p.len, 20 + 8 + 40, `packet ${i}: len is the whole datagram`)
      t.equal(p.origLen, p.len, `packet ${i}: not truncated`)
      t.equal(u.totalLength, p.len, `packet ${i}: IP total length matches`)
      t.equal(p.info & 0xffff, ETH_P_IP, `packet ${i}: hw protocol IPv4`)
      t.equal((p.info >>> 16) & 0xff, NF_INET_LOCAL_OUT, `packet ${i}: hook LOCAL_OUT`)
      t.equal(p.info & PKT_TRUNCATED, 0, `packet ${i}: no truncated flag`)
      t.equal(p.mark, 0)
      t.equal(p.indev, 0)
      t.equal(p.outdev, LO_IFINDEX)
    }
    t.same(new Set(pkts.map((p) => p.id)).size, 5, 'ids are distinct')
    t.same((await r.done).sort(), [...sent].sort(), 'the receiver got every accepted packet')
  })

  await t.test('NF_DROP stops them', async (t) => {
    const r = await receiver(PORT_MAIN, 0, 1.5)
    const served = c.serve({ name: 'main', verdict: NF_DROP, n: 3 })
    send(PORT_MAIN, 3, 10, 'drop')
    const pkts = (await served).batches.flatMap((b) => b.packets)
    t.same(pkts.map((p) => udp(p.hex).payload), payloads(3, 10, 'drop'), 'queued')
    t.same(await r.done, [], 'the receiver got nothing')
  })

  await t.test('wait() sleeps until packets wait, drain() answers them', async (t) => {
    const idle = await c.call('wait', { name: 'main', timeoutMs: 300 }) as Reply & { ready: boolean, ms: number }
    t.equal(idle.ready, false, 'nothing waits: wait() times out')
    t.ok(idle.ms >= 250, `and it slept for its timeout (${idle.ms.toFixed(0)} ms)`)
    const r = await receiver(PORT_MAIN, 4)
    send(PORT_MAIN, 4, 30, 'blocking') // waits in the kernel: nobody reads between commands
    const busy = await c.call('wait', { name: 'main', timeoutMs: 5000 }) as Reply & { ready: boolean, ms: number }
    t.equal(busy.ready, true, 'packets wait: wait() says so')
    t.ok(busy.ms < 1000, `at once (${busy.ms.toFixed(0)} ms), not after its timeout`)
    const served = await c.serve({ name: 'main', verdict: NF_ACCEPT, n: 4 })
    t.equal(served.handled, 4, 'drain() handled the 4 packets')
    t.same(served.batches.flatMap((b) => b.packets).map((p) => udp(p.hex).payload), payloads(4, 30, 'blocking'), 'their bytes, in order')
    t.same((await r.done).sort(), payloads(4, 30, 'blocking').sort(), 'and its NF_ACCEPT verdicts let them through')
    const bad = await c.call('wait', { name: 'main', timeoutMs: -1 }) as Reply & { error?: { name: string } }
    t.match(bad, { ok: false, error: { name: 'RangeError' } }, 'a negative timeout is refused')
  })

  await t.test('a burst is read in batches of more than one packet', async (t) => {
    const statsBefore = (await c.call('stats', { name: 'main' })).stats!
    const r = await receiver(PORT_MAIN, 200)
    send(PORT_MAIN, 200, 100, 'burst') // waits in the kernel: nobody reads between commands
    const { batches } = await c.serve({ name: 'main', verdict: NF_ACCEPT, n: 200 })
    const sizes = batches.map((b) => b.count)
    t.equal(sizes.reduce((a, b) => a + b, 0), 200, 'all 200 arrived')
    t.ok(Math.max(...sizes) > 1, `a read returned more than one packet (batch sizes ${sizes.join(',')})`)
    t.same(
      batches.flatMap((b) => b.packets).map((p) => udp(p.hex).payload),
      payloads(200, 100, 'burst'),
      'in order, bytes intact',
    )
    t.equal((await r.done).length, 200, 'all accepted packets were delivered')
    const stats = (await c.call('stats', { name: 'main' })).stats!
    t.equal(stats.packets! - statsBefore.packets!, 200, 'stats.packets grew by 200')
    t.equal(stats.batches! - statsBefore.batches!, batches.length, 'stats.batches counts reads')
    t.equal(stats.verdicts! - statsBefore.verdicts!, 200, 'stats.verdicts grew by 200')
    t.match(stats, { enobufs: 0, recvErrors: 0, sendErrors: 0, verdictErrors: 0 }, 'no errors')
  })

  await t.test('a batch larger than one verdict sendmsg (1638) is answered completely', async (t) => {
    const n = 3000
    // A read fills at most bufferSize / (copyRange + 1024) slots: 4 MiB / 1280 > 3000.
    const options = { batchSize: 4096, maxLen: 4096, copyRange: 256 }
    t.ok((await c.call('open', { name: 'big', queue: 13, options })).ok)
    const r = await receiver(PORT_BIG, n, 5)
    send(PORT_BIG, n, 64, 'big') // nobody reads yet: all wait in the kernel
    const sizes = (await c.serve({ name: 'big', verdict: NF_ACCEPT, n })).batches.map((b) => b.count)
    t.ok(Math.max(...sizes) > 1638, `one read took more than 1638 packets (batch sizes ${sizes.join(',')})`)
    t.equal((await r.done).length, n, 'every packet got its verdict and was delivered')
    t.match((await c.call('stats', { name: 'big' })).stats, { packets: n, verdicts: n, sendErrors: 0, verdictErrors: 0 })
    t.ok((await c.call('close', { name: 'big' })).ok)
  })

  await t.test('verdictBatch: a run of equal verdicts is one batch verdict, which answers every packet up to its id', async (t) => {
    // The kernel applies NFQNL_MSG_VERDICT_BATCH to all queued packets with an
    // id up to the one it names, unanswered ones too: that is why the option is
    // off by default and the daemon, which answers every packet, turns it on.
    // A handler that leaves the first packet unanswered shows which kind of
    // message went out.
    for (const verdictBatch of [true, false]) {
      const name = `vb-${String(verdictBatch)}`
      t.ok((await c.call('open', { name, queue: 13, options: { verdictBatch } })).ok)
      const r = await receiver(PORT_BIG, 5, 1.5)
      const tag = `vb${verdictBatch ? 1 : 0}`
      send(PORT_BIG, 5, 20, tag) // nobody reads yet: one read takes all 5
      t.equal((await c.serve({ name, verdict: NF_ACCEPT, n: 5, mode: 'hold-first' })).handled, 5)
      const got = (await r.done).sort()
      const all = payloads(5, 20, tag)
      if (verdictBatch) {
        t.same(got, [...all].sort(), 'verdictBatch: the batch verdict for the last 4 also let the unanswered first one through')
      } else {
        t.same(got, all.slice(1).sort(), 'per-packet verdicts: the 4 answered arrive, the unanswered one does not')
      }
      t.match((await c.call('stats', { name })).stats, { packets: 5, verdicts: 4, sendErrors: 0, verdictErrors: 0 }, 'stats.verdicts counts packets, not messages')
      t.ok((await c.call('close', { name })).ok)
    }
  })

  await t.test('a mark set with NF_REPEAT is seen by a later -m mark rule', async (t) => {
    t.ok((await c.call('open', { name: 'mark', queue: 8 })).ok)
    const r = await receiver(PORT_MARK, 4)
    // Served 500 ms past the 4th packet: a packet that came back would be seen.
    const served = c.serve({ name: 'mark', verdict: NF_REPEAT, mark: MARK_ACCEPT, n: 4, lingerMs: 500 })
    send(PORT_MARK, 4, 20, 'mark')
    const pkts = (await served).batches.flatMap((b) => b.packets)
    t.same((await r.done).sort(), payloads(4, 20, 'mark').sort(), 'repeated packets went through the mark rule')
    t.equal(counter(`dpt:${PORT_MARK}`, 'mark match'), 4, 'the mark rule matched each packet once')
    t.equal(counter(`dpt:${PORT_MARK}`, 'NFQUEUE'), 4, 'each packet was queued once')
    t.equal(pkts.length, 4, 'no packet came back to the queue')
    t.ok(pkts.every((p) => p.mark === 0), 'unmarked when first queued')
  })

  await t.test('copyRange truncates what is copied, not the packet', async (t) => {
    t.ok((await c.call('open', { name: 'trunc', queue: 9, options: { copyRange: 64 } })).ok)
    const r = await receiver(PORT_TRUNC, 1)
    send(PORT_TRUNC, 1, 1000, 'trunc')
    const [p] = (await c.serve({ name: 'trunc', verdict: NF_ACCEPT, n: 1 })).batches.flatMap((b) => b.packets)
    t.equal(p!.len, 64, 'copied 64 bytes')
    t.equal(p!.origLen, 1028, 'original length reported')
    t.not(p!.info & PKT_TRUNCATED, 0, 'truncated flag set')
    t.equal(udp(p!.hex).payload, payloads(1, 1000, 'trunc')[0]!.slice(0, (64 - 28) * 2), 'payload head intact')
    t.same(await r.done, payloads(1, 1000, 'trunc'), 'the whole datagram was delivered')
  })

  await t.test('a verdict for an unknown packet id is counted, a bad verdict value is refused', async (t) => {
    t.ok((await c.call('open', { name: 'verdicts', queue: 13 })).ok)
    const r = await receiver(PORT_BIG, 1)
    send(PORT_BIG, 1, 10, 'unknown')
    // The kernel's error reply is read by the next drain (500 ms of serving after the packet).
    t.equal((await c.serve({ name: 'verdicts', verdict: NF_ACCEPT, n: 1, lingerMs: 500, mode: 'unknown-id' })).handled, 1)
    t.same(await r.done, payloads(1, 10, 'unknown'), 'the real packet was answered')
    t.match((await c.call('stats', { name: 'verdicts' })).stats, { packets: 1, verdicts: 2, sendErrors: 0, verdictErrors: 1 }, 'kernel error reply counted in verdictErrors')

    send(PORT_BIG, 1, 10, 'bad')
    const refused = await c.serve({ name: 'verdicts', verdict: 2, n: 1 })
    t.match(refused.error, { name: 'RangeError', message: 'verdicts[0] is 0x2: must be NF_DROP, NF_ACCEPT, NF_QUEUE or NF_REPEAT' }, 'drain() throws what the addon refused')
    send(PORT_BIG, 1, 10, 'unset')
    const unset = await c.serve({ name: 'verdicts', verdict: VERDICT_UNSET, n: 1 })
    t.match(unset.error, { name: 'RangeError', message: 'verdicts[0] is 0xffffffff: must be NF_DROP, NF_ACCEPT, NF_QUEUE or NF_REPEAT' }, 'a packet the handler gave no verdict is refused')
    t.match((await c.call('stats', { name: 'verdicts' })).stats, { packets: 3, verdicts: 2, sendErrors: 0 }, 'nothing was sent for the refused batches')
    t.ok((await c.call('close', { name: 'verdicts' })).ok, 'the unanswered packets are dropped on close')
  })

  await t.test('binding a bound queue again is EBUSY', async (t) => {
    const r = await c.call('open', { name: 'again', queue: 7 })
    t.match(r, {
      ok: false,
      error: {
        isQueueError: true,
        name: 'QueueError',
        code: 'EBUSY',
        errno: -16,
        syscall: 'NFQNL_CFG_CMD_BIND',
        message: 'cannot open NFQUEUE 7: queue 7 is already bound by another socket (EBUSY); stop the other consumer or use another queue number',
      },
    })
    const other = child()
    await other.ready
    t.match(await other.call('open', { name: 'x', queue: 7 }), { ok: false, error: { code: 'EBUSY' } }, 'from another process too')
    other.kill()
  })

  await t.test('without CAP_NET_ADMIN opening is EPERM', async (t) => {
    const nobody = child([...NOBODY, '--inh-caps=-all'])
    await nobody.ready
    t.match(await nobody.call('open', { name: 'x', queue: 12 }), {
      ok: false,
      error: {
        isQueueError: true,
        code: 'EPERM',
        errno: -1,
        syscall: 'NFQNL_CFG_CMD_BIND',
        message: 'cannot open NFQUEUE 12: operation not permitted (EPERM); the process needs CAP_NET_ADMIN in its network namespace',
      },
    })
    nobody.kill()
  })

  await t.test('with only CAP_NET_ADMIN a non-root process serves the queue', async (t) => {
    const admin = child([...NOBODY, '--inh-caps=+net_admin', '--ambient-caps=+net_admin'])
    await admin.ready
    t.ok((await admin.call('open', { name: 'cap', queue: 10 })).ok, 'opens as uid 65534 with CAP_NET_ADMIN')
    const r = await receiver(PORT_CAP, 2)
    const served = admin.serve({ name: 'cap', verdict: NF_ACCEPT, n: 2 })
    send(PORT_CAP, 2, 10, 'cap')
    t.equal((await served).handled, 2)
    t.same((await r.done).sort(), payloads(2, 10, 'cap').sort(), 'accepted and delivered')
    admin.kill()
  })

  await t.test('a worker thread serves its own queue and releases it when it ends', async (t) => {
    t.ok((await c.call('worker', { queue: 11 })).ok, 'worker opened and served queue 11 and was terminated')
    t.ok((await c.call('open', { name: 'afterWorker', queue: 11 })).ok, 'queue 11 is free again')
    t.ok((await c.call('close', { name: 'afterWorker' })).ok)
  })

  await t.test('a queue dropped without close() is closed by its finalizer', async (t) => {
    t.ok((await c.call('leak', { queue: 14 })).ok, 'queue 14 could be bound again after gc')
  })

  await t.test('close is idempotent and releases the queue', async (t) => {
    t.match(await c.call('close', { name: 'main' }), { ok: true, closed: true })
    t.match(await c.call('stats', { name: 'main' }), { ok: true, stats: { packets: 0 } }, 'stats after close are zeros')
    t.match(
      await c.call('wait', { name: 'main', timeoutMs: 0 }),
      { ok: false, error: { isQueueError: true, code: 'EBADF' } },
      'use after close is EBADF',
    )
    t.ok((await c.call('open', { name: 'main2', queue: 7 })).ok, 'queue 7 can be bound again')
    t.ok((await c.call('close', { name: 'main2' })).ok)
  })

  await c.call('exit')
})
