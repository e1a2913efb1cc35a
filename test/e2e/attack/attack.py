#!/usr/bin/python3
"""Attack client for test/e2e/enforce.test.ts (issue 11): one evasion technique per
subcommand, run from the client namespace toward a server behind the aigate gateway.

Only the standard library: socket, ssl (OpenSSL 3 through MemoryBIO, so the
ClientHello bytes are a real client's and the handshake is finished by the real
stack), struct. Root-only parts (raw sockets, TCP_REPAIR) are what an insider
with root on their own machine can do; SO_KEEPALIVE, MSG_OOB, IP_TTL need no root.

Every subcommand prints one JSON line on stdout:
  {"sport": <client source port>, "handshake": bool, "body": "<server reply>", "error": "...", ...}
"body" is what the server sent back in answer to our request (Caddy and
tls_server.py answer "page <host>"), so "page claude.ai" in it means the
blocked site was reached.
"""
import json
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time

TCP_REPAIR = 19
TCP_REPAIR_QUEUE = 20
TCP_QUEUE_SEQ = 21
TCP_RECV_QUEUE = 1
TCP_SEND_QUEUE = 2
TCP_REPAIR_OFF_NO_WP = -1

# TLS warning alert record, user_canceled (90). Go's crypto/tls drops a warning
# alert before the ClientHello and reads on (conn.go readRecordOrCCS: "Drop the
# record on the floor and retry"); only close_notify (0) would end the read.
ALERT_WARNING = bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 0x5a])


def out(**kw):
    print(json.dumps(kw), flush=True)


# ---------------------------------------------------------------------------
# TLS through a MemoryBIO: we hold the ClientHello bytes and send them our way.

class Tls:
    def __init__(self, sni, alpn=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.sni = sni
        self.inc = ssl.MemoryBIO()
        self.outb = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.outb, server_hostname=sni)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.hello = self.outb.read()

    def finish(self, sock, deadline, host=None):
        """Pump the handshake to its end, send one HTTP request, read the answer."""
        res = {'handshake': False, 'body': '', 'error': ''}
        try:
            while True:
                try:
                    self.obj.do_handshake()
                    res['handshake'] = True
                    break
                except ssl.SSLWantReadError:
                    pass
                pending = self.outb.read()
                if pending:
                    sock.sendall(pending)
                data = recv_until(sock, deadline)
                if not data:
                    res['error'] = 'closed during handshake'
                    return res
                self.inc.write(data)
            pending = self.outb.read()
            if pending:
                sock.sendall(pending)
            req = 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' % (host or self.sni)
            self.obj.write(req.encode())
            sock.sendall(self.outb.read())
            body = b''
            while b'page ' not in body:
                try:
                    body += self.obj.read(65536)
                    continue
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    break
                pending = self.outb.read()
                if pending:
                    sock.sendall(pending)
                data = recv_until(sock, deadline)
                if not data:
                    break
                self.inc.write(data)
            res['body'] = body.decode('latin1')
        except socket.timeout:
            res['error'] = 'timeout'
        except (OSError, ssl.SSLError) as e:
            res['error'] = '%s: %s' % (type(e).__name__, e)
        return res


def recv_until(sock, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout()
    sock.settimeout(left)
    return sock.recv(65536)


def connect(dst, port, src, sport=0, opts=()):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for level, name, value in opts:
        s.setsockopt(level, name, value)
    s.bind((src, sport))
    s.settimeout(3)
    s.connect((dst, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


# ---------------------------------------------------------------------------
# Raw TCP segments on an open connection (root): sequence numbers from TCP_REPAIR.

def seqs(s):
    """(snd_nxt, rcv_nxt) of a connected socket with nothing unsent."""
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
        snd = struct.unpack('I', s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
        rcv = struct.unpack('I', s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
    finally:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP)
    return snd, rcv


def checksum(b):
    if len(b) % 2:
        b += b'\0'
    total = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def raw_segment(s, seq, ack, payload=b'', flags=0x10, ttl=64, window=502):
    """Send one TCP segment on s's 4-tuple through a raw socket (the kernel adds the IP header)."""
    src, sport = s.getsockname()
    dst, dport = s.getpeername()
    hdr = struct.pack('!HHIIBBHHH', sport, dport, seq & 0xffffffff, ack & 0xffffffff, 5 << 4, flags, window, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, socket.IPPROTO_TCP, len(hdr) + len(payload))
    csum = checksum(pseudo + hdr + payload)
    hdr = hdr[:16] + struct.pack('!H', csum) + hdr[18:]
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    r.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    r.sendto(hdr + payload, (dst, 0))
    r.close()


# ---------------------------------------------------------------------------
# Subcommands.

def tls_attack(a, send_hello, opts=(), alpn=None):
    tls = Tls(a['sni'], alpn)
    s = connect(a['dst'], a['port'], a['src'], a.get('sport', 0), opts)
    sport = s.getsockname()[1]
    info = {}
    try:
        info = send_hello(s, tls.hello) or {}
        res = tls.finish(s, time.monotonic() + a['timeout'])
    except OSError as e:
        res = {'handshake': False, 'body': '', 'error': '%s: %s' % (type(e).__name__, e)}
    s.close()
    out(sport=sport, hello_len=len(tls.hello), **info, **res)


def cmd_plain(a):
    """An ordinary TLS client (the hello in one send)."""
    tls_attack(a, lambda s, h: s.sendall(h), alpn=alpn_list(a))


def cmd_burn_ack(a):
    """Class 1: n pure ACKs after the three-way handshake (raw socket), then the hello."""
    def send(s, hello):
        snd, rcv = seqs(s)
        for _ in range(a['n']):
            raw_segment(s, snd, rcv)
            time.sleep(0.005)
        time.sleep(0.05)
        s.sendall(hello)
        return {'acks': a['n']}
    tls_attack(a, send)


def cmd_burn_keepalive(a):
    """Class 1, unprivileged: SO_KEEPALIVE probes every second, wait for n of them, then the hello."""
    opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
            (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1),
            (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)]

    def send(s, hello):
        time.sleep(a['n'] + 0.5)
        s.sendall(hello)
        return {'probes': a['n']}
    tls_attack(a, send, opts)


def cmd_alert(a):
    """Class 3: a TLS warning alert record in front of the ClientHello, same segment."""
    tls_attack(a, lambda s, h: s.sendall(ALERT_WARNING + h))


def cmd_urgent(a):
    """Class 3: the hello in two segments with one urgent (MSG_OOB) byte between them."""
    def send(s, hello):
        k = name_offset(hello, a['sni']) + 2
        s.sendall(hello[:k])
        time.sleep(0.03)
        s.send(b'x', socket.MSG_OOB)
        time.sleep(0.03)
        s.sendall(hello[k:])
        return {'split': k}
    tls_attack(a, send)


def cmd_split(a):
    """Control: the hello split right before the server name, two segments, nothing else."""
    def send(s, hello):
        k = name_offset(hello, a['sni'])
        s.sendall(hello[:k])
        time.sleep(0.05)
        s.sendall(hello[k:])
        return {'split': k}
    tls_attack(a, send)


def cmd_fake(a):
    """Class 4: hello split before the name; a fake second part naming `fake` (same
    length) with a TTL that dies after the gateway; then the real second part."""
    fake = a['fake'].encode()
    if len(fake) != len(a['sni']):
        raise SystemExit('fake name must have the length of the real one')

    def send(s, hello):
        k = name_offset(hello, a['sni'])
        s.sendall(hello[:k])
        time.sleep(0.05)  # acknowledged: the send queue is empty
        snd, rcv = seqs(s)
        forged = fake + hello[k + len(fake):]
        raw_segment(s, snd, rcv, forged, flags=0x18, ttl=a['ttl'])
        time.sleep(0.05)
        s.sendall(hello[k:])
        return {'split': k, 'seq': snd}
    tls_attack(a, send)


def cmd_decoy_behind(a):
    """Class 7: a hello for `decoy` sent `behind` bytes before the stream's next byte
    (normal TTL: conntrack takes it, the server drops it as old data), then the real hello."""
    def send(s, hello):
        snd, rcv = seqs(s)
        decoy = Tls(a['decoy']).hello
        raw_segment(s, snd - a['behind'], rcv, decoy, flags=0x18)
        time.sleep(0.05)
        s.sendall(hello)
        return {'decoy_seq': (snd - a['behind']) & 0xffffffff}
    tls_attack(a, send)


def cmd_reuse(a):
    """Class 8: an allowed connection from a fixed port, ended by the client's RST
    (SO_LINGER 0); at once a new connection from the same port with the real hello."""
    first = Tls(a['first'])
    s = connect(a['dst'], a['port'], a['src'], a['sport'])
    s.sendall(first.hello)
    r1 = first.finish(s, time.monotonic() + a['timeout'])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()
    time.sleep(0.05)
    tls_attack(a, lambda s2, h: s2.sendall(h))
    print(json.dumps({'first': r1}), file=sys.stderr)


def cmd_quic(a):
    """Class 1 (QUIC): n one-byte datagrams from the socket, then real Initial datagrams
    (files; "handshake-junk" sends a random datagram shaped like a Handshake packet: class 7)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a['src'], a.get('sport', 0)))
    for _ in range(a['n']):
        s.sendto(b'\0', (a['dst'], a['port']))
        time.sleep(0.002)
    time.sleep(0.02)
    for f in a['files']:
        if f == 'handshake-junk':
            # A 1250-byte datagram shaped like a v1 Handshake packet, random inside (no key can open it).
            d = bytearray(os.urandom(1250))
            d[0:6] = bytes([0xe3, 0, 0, 0, 1, 8])
            d[14] = 0
            d[15:17] = struct.pack('!H', 0x4000 | (1250 - 17))
            s.sendto(bytes(d), (a['dst'], a['port']))
        else:
            with open(f, 'rb') as fh:
                s.sendto(fh.read(), (a['dst'], a['port']))
        time.sleep(0.02)
    replies = 0
    deadline = time.monotonic() + a['timeout']
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            s.recvfrom(65536)
            replies += 1
        except socket.timeout:
            break
    out(sport=s.getsockname()[1], burnt=a['n'], replies=replies, handshake=replies > 0, body='', error='')


def qname(name):
    return b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\0'


def cmd_dns_forward(a):
    """Class 3: the question's name is a compression pointer to labels placed after the question."""
    header = struct.pack('!HHHHHH', random.randrange(65536), 0x0100, 1, 0, 0, 0)
    # header (12) | question: pointer (2) type (2) class (2) | labels at offset 18
    msg = header + struct.pack('!HHH', 0xc000 | 18, 1, 1) + qname(a['name'])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a['src'], a.get('sport', 0)))
    s.settimeout(a['timeout'])
    s.sendto(msg, (a['dst'], 53))
    answer = ''
    try:
        reply = s.recv(4096)
        an = struct.unpack('!H', reply[6:8])[0]
        if an > 0 and len(reply) >= 4:
            answer = socket.inet_ntoa(reply[-4:])
        rcode = reply[3] & 0x0f
    except (socket.timeout, OSError):   # dropped, or refused (ICMP unreachable)
        reply, rcode = b'', None
    out(sport=s.getsockname()[1], answered=len(reply) > 0, rcode=rcode, answer=answer, handshake=False, body='', error='')


def cmd_http_pipeline(a):
    """Class 3: several HTTP/1.1 requests in one segment; what does the server answer?"""
    s = connect(a['dst'], a['port'], a['src'], a.get('sport', 0))
    sport = s.getsockname()[1]
    req = ''.join('GET / HTTP/1.1\r\nHost: %s\r\n\r\n' % h for h in a['hosts'])
    s.sendall(req.encode())
    body = b''
    deadline = time.monotonic() + a['timeout']
    try:
        while body.count(b'page ') < len(a['hosts']):
            data = recv_until(s, deadline)
            if not data:
                break
            body += data
        err = ''
    except socket.timeout:
        err = 'timeout'
    except OSError as e:
        err = '%s: %s' % (type(e).__name__, e)
    s.close()
    out(sport=sport, handshake=False, body=body.decode('latin1'), error=err)


def cmd_midstream(a):
    """Class 6: handshake first, then wait for a line on stdin (the daemon is restarted), then the request."""
    tls = Tls(a['sni'])
    s = connect(a['dst'], a['port'], a['src'], a.get('sport', 0))
    sport = s.getsockname()[1]
    deadline = time.monotonic() + a['timeout']
    s.sendall(tls.hello)
    ok = False
    try:
        while True:
            try:
                tls.obj.do_handshake()
                ok = True
                break
            except ssl.SSLWantReadError:
                pass
            pending = tls.outb.read()
            if pending:
                s.sendall(pending)
            data = recv_until(s, deadline)
            if not data:
                break
            tls.inc.write(data)
        pending = tls.outb.read()
        if pending:
            s.sendall(pending)
    except (OSError, ssl.SSLError):
        pass
    out(sport=sport, stage='ready', handshake=ok)
    sys.stdin.readline()
    res = tls.finish(s, time.monotonic() + a['timeout'])
    s.close()
    out(sport=sport, stage='done', **res)


def cmd_quic_flood(a):
    """Class 5: random-DCID QUIC v1 Initial-shaped datagrams (1250 bytes) as fast as
    possible, each socket (source port, so conntrack flow) used for `per_port` datagrams:
    a rule that queues only a flow's first packets still gets every one of them."""
    end = time.monotonic() + a['seconds']
    per_port = a.get('per_port', 4)
    body = bytearray(os.urandom(1250))
    body[0:6] = bytes([0xc3, 0, 0, 0, 1, 8])
    body[14:16] = bytes([0, 0])            # SCID length 0, token length 0
    body[16:18] = struct.pack('!H', 0x4000 | (1250 - 18))
    sent = 0
    dst = (a['dst'], a['port'])
    while time.monotonic() < end:
        socks = []
        for _ in range(64):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((a['src'], 0))
            socks.append(s)
        for _ in range(per_port):
            for s in socks:
                body[6:14] = os.urandom(8)
                try:
                    s.sendto(body, dst)
                    sent += 1
                except OSError:
                    pass
        for s in socks:
            s.close()
    out(sent=sent, seconds=a['seconds'], pps=int(sent / a['seconds']))


def cmd_tries(a):
    """Class 5, the second client: `count` TLS attempts to each name, one every `every` seconds, in threads."""
    results = []
    lock = threading.Lock()

    def one(name):
        tls = Tls(name)
        r = {'name': name, 'handshake': False, 'body': '', 'error': '', 'sport': 0}
        try:
            s = connect(a['dst'], a['port'], a['src'], 0)
            r['sport'] = s.getsockname()[1]
            s.sendall(tls.hello)
            r.update(tls.finish(s, time.monotonic() + a['timeout']))
            s.close()
        except OSError as e:
            r['error'] = '%s: %s' % (type(e).__name__, e)
        with lock:
            results.append(r)
    threads = []
    for i in range(a['count']):
        for name in a['names']:
            th = threading.Thread(target=one, args=(name,))
            th.start()
            threads.append(th)
        time.sleep(a['every'])
    for th in threads:
        th.join()
    out(results=results)


def name_offset(hello, name):
    k = hello.find(name.encode())
    if k < 0:
        raise SystemExit('name not in the hello')
    return k


def alpn_list(a):
    n = a.get('alpn', 0)
    if not n:
        return None
    # Protocol ids of 100 bytes; http/1.1 first so Caddy and OpenSSL can agree on it.
    return ['http/1.1'] + ['x-aigate-enforce-%03d-' % i + 'p' * 79 for i in range(n)]


def main():
    cmd = sys.argv[1]
    a = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    a.setdefault('timeout', 2.0)
    globals()['cmd_' + cmd.replace('-', '_')](a)


if __name__ == '__main__':
    main()
