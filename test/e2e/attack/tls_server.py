#!/usr/bin/python3
"""An OpenSSL TLS server (Python's ssl) for test/e2e/enforce.test.ts: any server name,
one self-signed certificate. It logs, one JSON line per event, to the file given:
  {"event": "hello", "port": <client port>, "sni": "<name in the ClientHello it parsed>"}
  {"event": "done",  "port": ..., "sni": ...}   handshake finished
  {"event": "served", "port": ..., "sni": ..., "host": "<Host header>"}
and answers one HTTP request with "page <server name>".

usage: tls_server.py ADDR PORT CERT KEY LOGFILE
"""
import json
import socket
import ssl
import sys
import threading

addr, port, cert, key, logfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
lock = threading.Lock()
log = open(logfile, 'a', buffering=1)


def emit(**kw):
    with lock:
        log.write(json.dumps(kw) + '\n')


def handle(conn, peer):
    seen = {'sni': None}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(['http/1.1'])

    def on_sni(sock, name, _ctx):
        seen['sni'] = name
        emit(event='hello', port=peer[1], sni=name)
    ctx.sni_callback = on_sni
    conn.settimeout(5)
    try:
        s = ctx.wrap_socket(conn, server_side=True)
        emit(event='done', port=peer[1], sni=seen['sni'])
        req = b''
        while b'\r\n\r\n' not in req:
            d = s.recv(4096)
            if not d:
                break
            req += d
        host = ''
        for line in req.split(b'\r\n'):
            if line.lower().startswith(b'host:'):
                host = line[5:].strip().decode('latin1')
        body = ('page %s' % seen['sni']).encode()
        s.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % len(body) + body)
        emit(event='served', port=peer[1], sni=seen['sni'], host=host)
        s.close()
    except (OSError, ssl.SSLError) as e:
        emit(event='error', port=peer[1], sni=seen['sni'], error=str(e))
        conn.close()


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(128)
while True:
    c, p = srv.accept()
    threading.Thread(target=handle, args=(c, p), daemon=True).start()
