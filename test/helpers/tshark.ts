import { spawnSync } from 'node:child_process'
import { domainToASCII } from 'node:url'

/** Names tshark reads in a capture: TLS SNI, DNS query names (queries only), HTTP Host; normalised like ours. */
export function tsharkNames (file: string): string[] {
  const r = spawnSync('tshark', ['-r', file, '-Y', 'tls.handshake.type == 1 || (dns.flags.response == 0) || http.request',
    '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=,',
    '-e', 'tls.handshake.extensions_server_name', '-e', 'dns.qry.name', '-e', 'http.host'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`tshark failed: ${r.stderr}`)
  const names = new Set<string>()
  for (const line of r.stdout.split('\n')) {
    for (const field of line.split('\t')) {
      for (const n of field.split(',')) {
        if (n === '') continue
        // tshark shows IDN as Unicode; we report punycode (the wire form).
        names.add(domainToASCII(n.toLowerCase().replace(/\.$/, '').replace(/:\d+$/, '')))
      }
    }
  }
  return [...names].sort()
}

/** Parse NDJSON decision lines. */
export function ndjson (text: string): Array<Record<string, any>> {
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, any>)
}
