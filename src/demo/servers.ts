import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../config/index.js'
import type { Netns } from './netns.js'

/** What the servers need of a sandbox: its server namespace and address (Sandbox, HaSandbox). */
export interface ServerSide extends Pick<Netns, 'spawn' | 'exec'> { srv: string, addrs: { server: string } }

/**
 * The server side of the sandbox: one TLS server that answers every name
 * (openssl s_server, self-signed), a plain HTTP server, and dnsmasq answering
 * every name with the server's address, over UDP and TCP.
 */
export function startServers (sb: ServerSide, tmp: string): void {
  const key = join(tmp, 'key.pem')
  const cert = join(tmp, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=aigate-demo'], { stdio: 'ignore' })
  writeFileSync(join(tmp, 'index.html'), 'hello from the demo server\n')
  // 2 MiB for bulk-transfer checks: a decided flow must not come back to userspace.
  writeFileSync(join(tmp, 'big.bin'), Buffer.alloc(2 * 1048576, 0x61))
  // One web server answers every name on 443 (TLS, self-signed) and 80.
  sb.spawn(sb.srv, process.execPath, [join(PACKAGE_ROOT, 'dist', 'src', 'demo', 'web-server.js'), cert, key, tmp])
  sb.spawn(sb.srv, 'dnsmasq', ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${sb.addrs.server}`,
    `--address=/#/${sb.addrs.server}`, `--pid-file=${join(tmp, 'dnsmasq.pid')}`, '--user=root'])
}

export function probe (sb: ServerSide, host: string, port: number): boolean {
  try {
    sb.exec(sb.srv, 'bash', ['-c', `exec 3<>/dev/tcp/${host}/${port}`], { timeoutMs: 2000 })
    return true
  } catch {
    return false
  }
}

