import { createServer as createHttps } from 'node:https'
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http'
import { readFileSync, createReadStream, statSync } from 'node:fs'
import { join, normalize } from 'node:path'

/**
 * The sandbox's web server (demo and end-to-end tests only): HTTPS on 443 and
 * HTTP on 80, every name, files from one directory. Concurrent, unlike
 * `openssl s_server`, so a connection the gateway blocks in the middle of
 * its handshake does not hold up the next client.
 *
 *   node web-server.js <cert.pem> <key.pem> <dir>
 */
const [certFile, keyFile, dir] = process.argv.slice(2)
if (certFile === undefined || keyFile === undefined || dir === undefined) {
  process.stderr.write('usage: web-server.js <cert.pem> <key.pem> <dir>\n')
  process.exit(2)
}

function serve (req: IncomingMessage, res: ServerResponse): void {
  const path = normalize(join(dir as string, decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')))
  if (!path.startsWith(dir as string)) { res.writeHead(403).end(); return }
  try {
    const file = statSync(path).isDirectory() ? join(path, 'index.html') : path
    res.writeHead(200, { 'content-length': statSync(file).size })
    createReadStream(file).pipe(res)
  } catch {
    res.writeHead(404).end('not found\n')
  }
}

const tls = { cert: readFileSync(certFile), key: readFileSync(keyFile) }
for (const host of ['0.0.0.0', '::']) {
  createHttps(tls, serve).listen({ port: 443, host, ipv6Only: host === '::' })
  createHttp(serve).listen({ port: 80, host, ipv6Only: host === '::' })
}
process.on('SIGTERM', () => process.exit(0))
