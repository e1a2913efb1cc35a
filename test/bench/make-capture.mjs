#!/usr/bin/env node
// test/bench/make-capture.mjs — build a large, realistic benchmark pcap from
// the real client packets in test/fixtures/pcap/clients.pcap.
//
// Usage:
//   node test/bench/make-capture.mjs --out FILE [--packets N] [--seed S]
//        [--in PCAP] [--kinds tls,dns,http] [--no-ipv6] [--gap-us U]
//
//   --out FILE      pcap to write (default: $TMPDIR/aigate-bench.pcap)
//   --packets N     exact number of packets to write (default 300000)
//   --seed S        PRNG seed; same inputs + same seed => byte-identical file (default 1)
//   --in PCAP       source capture (default: test/fixtures/pcap/clients.pcap)
//   --kinds LIST    which messages to use: tls, dns, http (default: all three)
//   --no-ipv6       use only the IPv4 flows of the source capture
//   --gap-us U      microseconds between consecutive packets (default 20)
//
// What it does:
//   * Parses the libpcap file itself (global header + records, Ethernet link
//     type; micro- or nanosecond, either byte order). No dependencies.
//   * Takes from the source capture, per client flow:
//       - TLS to port 443: SYN, SYN-ACK, ACK, then the client's data segments
//         up to the end of the ClientHello (several segments if it spans them);
//       - HTTP to port 80: same handshake, then the request head's segments;
//       - DNS over TCP to port 53: same handshake, then the length-prefixed query;
//       - DNS over UDP to port 53: the query datagram (QDCOUNT 1 only, so the
//         hand-built two-question message in clients.pcap is left out).
//     Server packets other than the SYN-ACK, and everything after the first
//     client message, are left out.
//   * Writes copies of those flows (round-robin over a seeded shuffle) until
//     exactly N packets are written. Every copy is a distinct flow: the client
//     address and port are rewritten (IPv4 10.64.0.0/10, IPv6 fd00:200::a600:0:x:y,
//     16 flows per client address, ports in Linux's ephemeral range
//     32768-60999), TCP sequence/ack numbers get a random ISN per side,
//     IPv4 IDs and DNS transaction IDs are re-drawn, and the IPv4 header
//     checksum and TCP/UDP checksums (with pseudo-header) are recomputed.
//     Servers keep their addresses (10.200.0.2, fd00:200::2) and ports.
//   * Timestamps start at the source capture's first packet and advance by
//     --gap-us per packet (monotonic).
//
// Check the output with:  tshark -r FILE -c 10   and   ndpiReader -i FILE
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function usage(msg) {
  if (msg) process.stderr.write(`make-capture: ${msg}\n`);
  process.stderr.write(
    'usage: node test/bench/make-capture.mjs --out FILE [--packets N] [--seed S] [--in PCAP]\n' +
      '       [--kinds tls,dns,http] [--no-ipv6] [--gap-us U]\n',
  );
  process.exit(msg ? 2 : 0);
}

function parseArgs(argv) {
  const o = {
    in: path.resolve(HERE, '../fixtures/pcap/clients.pcap'),
    out: path.join(os.tmpdir(), 'aigate-bench.pcap'),
    packets: 300000,
    seed: 1,
    kinds: new Set(['tls', 'dns', 'http']),
    ipv6: true,
    gapUs: 20,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const int = (v, min) => {
      if (!/^\d+$/.test(v) || Number(v) < min) usage(`${a}: expected an integer >= ${min}, got ${v}`);
      return Number(v);
    };
    switch (a) {
      case '--in': o.in = val(); break;
      case '--out': o.out = val(); break;
      case '--packets': o.packets = int(val(), 1); break;
      case '--seed': o.seed = int(val(), 0); break;
      case '--gap-us': o.gapUs = int(val(), 1); break;
      case '--no-ipv6': o.ipv6 = false; break;
      case '--kinds': {
        o.kinds = new Set(val().split(',').filter(Boolean));
        for (const k of o.kinds) if (!['tls', 'dns', 'http'].includes(k)) usage(`unknown kind ${k}`);
        break;
      }
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  return o;
}

// ---------------------------------------------------------------- PRNG
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

// ---------------------------------------------------------------- pcap in
function readPcap(file) {
  const b = fs.readFileSync(file);
  if (b.length < 24) throw new Error(`${file}: too short for a pcap global header`);
  const m = b.readUInt32LE(0);
  let le, nano;
  if (m === 0xa1b2c3d4) [le, nano] = [true, false];
  else if (m === 0xa1b23c4d) [le, nano] = [true, true];
  else if (m === 0xd4c3b2a1) [le, nano] = [false, false];
  else if (m === 0x4d3cb2a1) [le, nano] = [false, true];
  else throw new Error(`${file}: not a libpcap file (magic 0x${m.toString(16)}; pcapng is not supported)`);
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linktype = u32(20) & 0x0fffffff;
  if (linktype !== 1) throw new Error(`${file}: link type ${linktype}, only Ethernet (1) is supported`);
  const recs = [];
  let off = 24;
  while (off + 16 <= b.length) {
    const sec = u32(off), frac = u32(off + 4), incl = u32(off + 8), orig = u32(off + 12);
    off += 16;
    if (off + incl > b.length) break; // truncated last record
    recs.push({ sec, usec: nano ? Math.floor(frac / 1000) : frac, data: b.subarray(off, off + incl), truncated: incl < orig });
    off += incl;
  }
  return recs;
}

// Decode Ethernet / IPv4|IPv6 / TCP|UDP offsets. Returns null for anything else.
function decode(rec) {
  const d = rec.data;
  if (rec.truncated || d.length < 14) return null;
  let l3 = 14;
  let et = d.readUInt16BE(12);
  while ((et === 0x8100 || et === 0x88a8) && d.length >= l3 + 4) {
    et = d.readUInt16BE(l3 + 2);
    l3 += 4;
  }
  let fam, l4, proto, ipEnd, src, dst;
  if (et === 0x0800) {
    if (d.length < l3 + 20 || d[l3] >> 4 !== 4) return null;
    const ihl = (d[l3] & 15) * 4;
    const tot = d.readUInt16BE(l3 + 2);
    if ((d.readUInt16BE(l3 + 6) & 0x3fff) !== 0) return null; // fragment
    fam = 4; proto = d[l3 + 9]; l4 = l3 + ihl; ipEnd = l3 + tot;
    src = d.subarray(l3 + 12, l3 + 16); dst = d.subarray(l3 + 16, l3 + 20);
  } else if (et === 0x86dd) {
    if (d.length < l3 + 40) return null;
    fam = 6; proto = d[l3 + 6]; l4 = l3 + 40; ipEnd = l4 + d.readUInt16BE(l3 + 4);
    src = d.subarray(l3 + 8, l3 + 24); dst = d.subarray(l3 + 24, l3 + 40);
  } else return null;
  if (ipEnd > d.length) return null;
  const p = { fam, l3, l4, proto, ipEnd, src: Buffer.from(src), dst: Buffer.from(dst), sec: rec.sec, usec: rec.usec, data: rec.data };
  if (proto === 6) {
    if (ipEnd < l4 + 20) return null;
    const doff = (d[l4 + 12] >> 4) * 4;
    Object.assign(p, {
      sport: d.readUInt16BE(l4), dport: d.readUInt16BE(l4 + 2),
      seq: d.readUInt32BE(l4 + 4), ack: d.readUInt32BE(l4 + 8), flags: d[l4 + 13],
      pay: l4 + doff, payLen: ipEnd - (l4 + doff),
    });
  } else if (proto === 17) {
    if (ipEnd < l4 + 8) return null;
    Object.assign(p, { sport: d.readUInt16BE(l4), dport: d.readUInt16BE(l4 + 2), pay: l4 + 8, payLen: ipEnd - (l4 + 8) });
  } else return null;
  return p;
}

const SYN = 0x02, ACK = 0x10, RST = 0x04;
const KIND_BY_PORT = { 443: 'tls', 80: 'http', 53: 'dns' };

// How many bytes of client stream make the first complete message, or -1 if unknown yet.
function messageComplete(kind, buf) {
  if (kind === 'dns') return buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0);
  if (kind === 'http') return buf.includes('\r\n\r\n');
  // TLS: walk handshake records until the first handshake message is whole.
  let off = 0, hs = 0, need = -1;
  while (off + 5 <= buf.length) {
    if (buf[off] !== 0x16) return true; // not a handshake record: take what we have
    const len = buf.readUInt16BE(off + 3);
    const body = buf.subarray(off + 5, Math.min(buf.length, off + 5 + len));
    if (need < 0 && hs === 0 && body.length >= 4) need = 4 + body.readUIntBE(1, 3);
    hs += body.length;
    if (need >= 0 && hs >= need) return true;
    if (body.length < len) return false;
    off += 5 + len;
  }
  return false;
}

function buildTemplates(pkts, opt) {
  const templates = [];
  const key = (a, ap, b, bp) => `${a.toString('hex')}:${ap}>${b.toString('hex')}:${bp}`;
  const conns = new Map(); // client->server key -> state
  for (const p of pkts) {
    if (!opt.ipv6 && p.fam === 6) continue;
    if (p.proto === 17) {
      // QDCOUNT must be 1: the hand-built two-question message in clients.pcap is not a real client's.
      const d = p.data;
      if (p.dport === 53 && p.payLen >= 12 && (d[p.pay + 2] & 0x80) === 0 && d.readUInt16BE(p.pay + 4) === 1 && opt.kinds.has('dns')) {
        templates.push({ kind: 'dns', transport: 'udp', fam: p.fam, pkts: [{ p, c2s: true }] });
      }
      continue;
    }
    const kind = KIND_BY_PORT[p.dport] ?? KIND_BY_PORT[p.sport];
    if (!kind) continue;
    const c2s = KIND_BY_PORT[p.dport] !== undefined;
    const k = c2s ? key(p.src, p.sport, p.dst, p.dport) : key(p.dst, p.dport, p.src, p.sport);
    let c = conns.get(k);
    if (c2s && (p.flags & (SYN | ACK)) === SYN) {
      c = { kind, fam: p.fam, syn: p, synack: null, ack: null, data: [], next: (p.seq + 1) >>> 0, buf: Buffer.alloc(0), done: false };
      conns.set(k, c);
      continue;
    }
    if (!c || c.done || p.flags & RST) continue;
    if (!c2s) {
      if (!c.synack && (p.flags & (SYN | ACK)) === (SYN | ACK)) c.synack = p;
      continue;
    }
    if (!c.synack) continue;
    if (p.payLen === 0) {
      if (!c.ack && !c.data.length && p.flags & ACK) c.ack = p;
      continue;
    }
    if (p.seq !== c.next) continue; // retransmission or out of order
    c.data.push(p);
    c.next = (c.next + p.payLen) >>> 0;
    c.buf = Buffer.concat([c.buf, p.data.subarray(p.pay, p.ipEnd)]);
    if (messageComplete(kind, c.buf)) {
      c.done = true;
      if (c.ack && opt.kinds.has(kind)) {
        templates.push({
          kind, transport: 'tcp', fam: c.fam,
          pkts: [{ p: c.syn, c2s: true }, { p: c.synack, c2s: false }, { p: c.ack, c2s: true }, ...c.data.map((d) => ({ p: d, c2s: true }))],
        });
      }
    }
  }
  return templates;
}

// ---------------------------------------------------------------- checksums
function sum16(buf, start, end, acc) {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += (buf[i] << 8) | buf[i + 1];
  if (i < end) s += buf[i] << 8;
  return s;
}
function fold(s) {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return ~s & 0xffff;
}
function fixChecksums(d, p) {
  const { l3, l4, ipEnd, proto, fam } = p;
  const l4len = ipEnd - l4;
  let ps;
  if (fam === 4) {
    d.writeUInt16BE(0, l3 + 10);
    d.writeUInt16BE(fold(sum16(d, l3, l4, 0)), l3 + 10);
    ps = sum16(d, l3 + 12, l3 + 20, 0) + proto + l4len;
  } else {
    ps = sum16(d, l3 + 8, l3 + 40, 0) + proto + l4len;
  }
  const co = proto === 6 ? l4 + 16 : l4 + 6;
  d.writeUInt16BE(0, co);
  let c = fold(sum16(d, l4, ipEnd, ps));
  if (proto === 17 && c === 0) c = 0xffff;
  d.writeUInt16BE(c, co);
}

// ---------------------------------------------------------------- flows
function clientAddr(fam, k) {
  const host = Math.floor(k / 16);
  if (fam === 4) {
    const d = 1 + (host % 254);
    const rest = Math.floor(host / 254);
    return Buffer.from([10, 64 + (Math.floor(rest / 256) % 64), rest % 256, d]);
  }
  const a = Buffer.alloc(16);
  Buffer.from('fd000200000000000000a60000000000', 'hex').copy(a);
  a.writeUInt32BE((host + 1) >>> 0, 12);
  return a;
}

function emitFlow(t, k, rnd, out) {
  const cAddr = clientAddr(t.fam, k);
  // Linux ephemeral range 32768-60999; 16 disjoint slices keep flows on one address distinct.
  const cPort = 32768 + (k % 16) * 1764 + (rnd() % 1764);
  const dc = rnd(), ds = rnd();
  const ipid = rnd() & 0xffff;
  const dnsId = rnd() & 0xffff;
  let i = 0;
  for (const { p, c2s } of t.pkts) {
    const d = Buffer.from(p.data); // copy
    const aOff = p.fam === 4 ? (c2s ? p.l3 + 12 : p.l3 + 16) : (c2s ? p.l3 + 8 : p.l3 + 24);
    cAddr.copy(d, aOff);
    d.writeUInt16BE(cPort, c2s ? p.l4 : p.l4 + 2);
    if (p.fam === 4) d.writeUInt16BE((ipid + i) & 0xffff, p.l3 + 4);
    if (p.proto === 6) {
      const f = d[p.l4 + 13];
      d.writeUInt32BE((p.seq + (c2s ? dc : ds)) >>> 0, p.l4 + 4);
      if (f & ACK) d.writeUInt32BE((p.ack + (c2s ? ds : dc)) >>> 0, p.l4 + 8);
      if (t.kind === 'dns' && p.payLen >= 4 && i === 3) d.writeUInt16BE(dnsId, p.pay + 2);
    } else if (t.kind === 'dns') {
      d.writeUInt16BE(dnsId, p.pay);
    }
    fixChecksums(d, p);
    out(d);
    i++;
  }
}

// ---------------------------------------------------------------- main
function main() {
  const opt = parseArgs(process.argv.slice(2));
  const recs = readPcap(opt.in);
  if (!recs.length) throw new Error(`${opt.in}: no packets`);
  const pkts = recs.map(decode).filter(Boolean);
  const templates = buildTemplates(pkts, opt);
  if (!templates.length) throw new Error(`${opt.in}: no usable client flows for kinds ${[...opt.kinds].join(',')}`);
  const single = templates.filter((t) => t.pkts.length === 1);
  const rnd = mulberry32(opt.seed);

  const fd = fs.openSync(opt.out, 'w');
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(262144, 16);
  gh.writeUInt32LE(1, 20);
  let chunks = [gh], chunkBytes = 24, total = 24;
  const flush = () => {
    if (!chunks.length) return;
    fs.writeSync(fd, Buffer.concat(chunks, chunkBytes));
    chunks = []; chunkBytes = 0;
  };
  let written = 0;
  const t0 = recs[0].sec * 1e6 + recs[0].usec;
  const out = (d) => {
    const ts = t0 + written * opt.gapUs;
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Math.floor(ts / 1e6), 0);
    h.writeUInt32LE(ts % 1e6, 4);
    h.writeUInt32LE(d.length, 8);
    h.writeUInt32LE(d.length, 12);
    chunks.push(h, d);
    chunkBytes += 16 + d.length;
    total += 16 + d.length;
    written++;
    if (chunkBytes > 4 << 20) flush();
  };

  const stats = {};
  let flows = 0;
  let order = [];
  while (written < opt.packets) {
    if (!order.length) {
      order = templates.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = rnd() % (i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    let t = templates[order.pop()];
    const left = opt.packets - written;
    if (t.pkts.length > left) {
      if (single.length) t = single[rnd() % single.length];
      else t = { ...t, pkts: t.pkts.slice(0, left) };
    }
    emitFlow(t, flows, rnd, out);
    const sk = `${t.kind}/${t.transport}/ipv${t.fam}`;
    stats[sk] = (stats[sk] ?? 0) + 1;
    flows++;
  }
  flush();
  fs.closeSync(fd);
  process.stderr.write(
    `make-capture: ${templates.length} source flows from ${opt.in}\n` +
      `make-capture: wrote ${opt.out}: ${written} packets, ${flows} flows, ${total} bytes (seed ${opt.seed})\n` +
      `make-capture: flows by kind: ${Object.entries(stats).sort().map(([k, v]) => `${k}=${v}`).join(' ')}\n`,
  );
}

try {
  main();
} catch (e) {
  process.stderr.write(`make-capture: ${e.message}\n`);
  process.exit(1);
}
