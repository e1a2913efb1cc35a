import t from 'tap'
import { parseHttp, HttpHead, skipEmptyLines, MAX_LEADING_EMPTY, MAX_HTTP_NAMES } from '../../../src/extract/http.js'
import { readName, NameOut } from '../../../src/name/index.js'
import { Status } from '../../../src/util/status.js'

/**
 * Plain-HTTP heads that make a server act on one name while a reader of the
 * first Host header sees another (or none). Each case is one line, with the
 * server behaviour it mirrors.
 */

const nameOut = new NameOut()
const h = new HttpHead()

/** The host a head reports: the normalised name, 'ip', '!error' or 'status N'. */
function host (s: string): string {
  const b = Buffer.from(s, 'latin1')
  const st = parseHttp(b, 0, b.length, h)
  if (st !== Status.Ok) return `status ${st}`
  if (h.ipLiteral) return 'ip ' + b.toString('latin1', h.hostStart, h.hostEnd)
  return readName(b, h.hostStart, h.hostEnd, nameOut) ? nameOut.name : `!${nameOut.error}`
}

/** Every host a head reports, in order, joined by ' ' (same forms as host()). */
function hosts (s: string): string {
  const b = Buffer.from(s, 'latin1')
  const st = parseHttp(b, 0, b.length, h)
  if (st !== Status.Ok) return `status ${st}`
  const r: string[] = []
  for (let i = 0; i < h.count; i++) {
    const p = h.starts[i] as number
    const q = h.ends[i] as number
    if (p < 0 || q > b.length || q <= p) r.push('!bounds')
    else if (b[p] === 0x5b) r.push('ip ' + b.toString('latin1', p, q))
    else r.push(readName(b, p, q, nameOut) ? nameOut.name : `!${nameOut.error}`)
  }
  return r.join(' ')
}

t.test('the host ends at the first colon outside an IP literal (nginx ngx_http_validate_host)', async (t) => {
  t.equal(host('GET / HTTP/1.1\r\nHost: api.openai.com:x\r\n\r\n'), 'api.openai.com', 'port that is not digits')
  t.equal(host('GET / HTTP/1.1\r\nHost: api.openai.com:80:80\r\n\r\n'), 'api.openai.com', 'two ports')
  t.equal(host('GET / HTTP/1.1\r\nHost: api.openai.com:\r\n\r\n'), 'api.openai.com', 'empty port')
  t.equal(host('GET / HTTP/1.1\r\nHost: api.openai.com:8080\r\n\r\n'), 'api.openai.com', 'a digit port, as before')
  t.equal(host('GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n'), 'ip [::1]', 'IPv6 literal: the port after ] is cut')
  t.equal(host('GET / HTTP/1.1\r\nHost: [::1]x:y\r\n\r\n'), 'ip [::1]', 'bytes after ] are ignored')
  t.equal(host('GET / HTTP/1.1\r\nHost: [::1\r\n\r\n'), 'ip [::1', 'unclosed literal: still no name')
  t.equal(host('GET / HTTP/1.1\r\nHost: :80\r\n\r\n'), 'status 2', 'empty host before the port')
})

t.test('empty lines before the request line are skipped (RFC 9112 §2.2; nginx, llhttp)', async (t) => {
  t.equal(host('\r\nGET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n'), 'api.openai.com', 'one CRLF')
  t.equal(host('\n\n\nGET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n'), 'api.openai.com', 'bare LFs')
  t.equal(host('\r\r\n\rGET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n'), 'api.openai.com', 'lone CRs, as nginx skips them')
  const most = '\r\n'.repeat(MAX_LEADING_EMPTY / 2)
  t.equal(host(most + 'GET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n'), 'api.openai.com', 'MAX_LEADING_EMPTY bytes')
  t.equal(host(most + '\nGET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n'), 'status 2', 'one more: malformed, not "not HTTP"')
  t.equal(host('\r\n'), 'status 1', 'only empty lines so far: need more')
  t.equal(host('\r\n\x16\x03\x01'), 'status 3', 'not a request after them')
  const b = Buffer.from(most + 'GET')
  t.equal(skipEmptyLines(b, 0, b.length), MAX_LEADING_EMPTY)
  t.equal(skipEmptyLines(b, 0, MAX_LEADING_EMPTY), MAX_LEADING_EMPTY, 'ends inside the run: its end')
  t.equal(skipEmptyLines(Buffer.from(most + '\r'), 0, MAX_LEADING_EMPTY + 1), -1)
  t.equal(skipEmptyLines(b, 5, 5), 5, 'empty input')
})

t.test('the authority of an absolute-form target is read, and Host too when it differs (RFC 9112 §3.2.2)', async (t) => {
  t.equal(hosts('GET http://api.openai.com/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'the reviewer\'s case: target first (what nginx uses), then Host')
  t.equal(host('GET http://api.openai.com/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com', 'host 0 is the target')
  t.equal(hosts('GET https://api.openai.com/v1 HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'https')
  t.equal(hosts('GET HtTp://API.openai.com/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'scheme in any case')
  t.equal(hosts('GET ftp://api.openai.com/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'any scheme: nginx and Go take its host too')
  t.equal(hosts('GET http://user:pw@api.openai.com:8080/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'userinfo and port removed')
  t.equal(hosts('GET http://a@b@api.openai.com/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'userinfo ends at the last @ (Go, WHATWG)')
  t.equal(hosts('GET http://api.openai.com:x:y/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'odd port cut at the first colon')
  t.equal(hosts('GET http://api.openai.com?x HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'authority ends at ?')
  t.equal(hosts('GET http://api.openai.com#x HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'authority ends at #')
  t.equal(hosts('GET http://api.openai.com HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'no path')
  t.equal(hosts('GET  \thttp://api.openai.com/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'api.openai.com example.org', 'extra white space after the method')
  t.equal(hosts('GET http://[2001:db8::1]:80/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'ip [2001:db8::1] example.org', 'IPv6 literal target')
  t.equal(hosts('GET http://evil.example\\@api.openai.com/ HTTP/1.1\r\nHost: x.example\r\n\r\n'), 'api.openai.com evil.example x.example', 'backslash: Go/Apache and WHATWG readings')
  t.equal(hosts('GET http://api.openai.com/ HTTP/1.1\r\nHost: API.OpenAI.com.:80\r\n\r\n'), 'api.openai.com', 'same host in Host: reported once')
  t.equal(hosts('GET http://api.openai.com/ HTTP/1.1\r\nAccept: */*\r\n\r\n'), 'api.openai.com', 'no Host at all')
  t.equal(hosts('GET http://api.openai.com/ HTTP/1.1\r\nHost:\r\n\r\n'), 'api.openai.com', 'empty Host')
  t.equal(hosts('GET http://api.openai.com/ HTTP/1.1\r\nHost: :80\r\n\r\n'), 'api.openai.com', 'Host without a host part')
  t.equal(hosts('GET http:///x HTTP/1.1\r\nHost: api.openai.com\r\n\r\n'), 'api.openai.com', 'empty authority: Host (Go falls back to it)')
  t.equal(hosts('GET http://user@:80/ HTTP/1.1\r\nHost: api.openai.com\r\n\r\n'), 'api.openai.com', 'authority without a host')
  t.equal(hosts('GET //api.openai.com/ HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'example.org', 'origin-form path, not an authority (Go, nginx)')
  t.equal(hosts('GET api.openai.com:443 HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'example.org', 'authority-form only with CONNECT')
  t.equal(hosts('OPTIONS * HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'example.org', 'asterisk-form')
  t.equal(hosts('GET http://api.openai.com/'), 'status 1', 'request line not finished')
  t.equal(hosts('GET http://api.openai.com/ HTTP/1.1\r\nAccept: */*\r\n'), 'status 1', 'head not finished')
})

t.test('CONNECT reports its authority-form target (RFC 9112 §3.2.3)', async (t) => {
  t.equal(hosts('CONNECT api.openai.com:443 HTTP/1.1\r\n\r\n'), 'api.openai.com', 'no Host')
  t.equal(hosts('CONNECT api.openai.com:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n'), 'api.openai.com example.org', 'Host differs')
  t.equal(hosts('CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n'), 'api.openai.com', 'Host the same')
  t.equal(hosts('CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n'), 'ip [::1]')
  t.equal(hosts('connect api.openai.com:443 HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'status 3', 'methods are case-sensitive')
  t.equal(hosts('CONNECTX api.openai.com:443 HTTP/1.1\r\nHost: example.org\r\n\r\n'), 'example.org', 'another method')
})

t.test('several Host headers: the first and the last are reported when they differ', async (t) => {
  t.equal(hosts('GET / HTTP/1.1\r\nHost: example.org\r\nHost: api.openai.com\r\n\r\n'), 'example.org api.openai.com', 'lenient servers take the last')
  t.equal(hosts('GET / HTTP/1.1\r\nHost: api.openai.com\r\nhost: example.org\r\n\r\n'), 'api.openai.com example.org', 'Node takes the first')
  t.equal(hosts('GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nHost: c.example\r\n\r\n'), 'a.example c.example', 'one in between: used by no server')
  t.equal(hosts('GET / HTTP/1.1\r\nHost: api.openai.com\r\nHOST: API.openai.com:80\r\n\r\n'), 'api.openai.com', 'the same host twice: once')
  t.equal(hosts('GET / HTTP/1.1\r\nHost:\r\nHost: api.openai.com\r\n\r\n'), 'api.openai.com', 'first empty')
  t.equal(hosts('GET / HTTP/1.1\r\nHost: :80\r\nHost: api.openai.com\r\n\r\n'), 'api.openai.com', 'first without a host part')
  t.equal(hosts('GET / HTTP/1.1\r\nHost: :80\r\nHost:\r\n\r\n'), 'status 2', 'no host part anywhere')
  t.equal(hosts('GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\nHost: c.example\r\n\r\n'), 'a.example b.example c.example', 'target, first and last Host')
  t.equal(hosts('GET http://a\\@b.example/ HTTP/1.1\r\nHost: c.example\r\nHost: d.example\r\n\r\n'), 'b.example a c.example d.example', 'MAX_HTTP_NAMES of them')
  t.equal(MAX_HTTP_NAMES, 12, 'room for pipelined heads (test/unit/extract/lenient.test.ts); one head names at most 4')
  t.equal(hosts('GET / HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n'), 'status 1', 'a second Host may still come: need more')
  const long = 'GET / HTTP/1.1\r\nHost: example.org\r\n' + 'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(200) + 'Host: api.openai.com\r\n\r\n'
  t.equal(hosts(long), 'status 2', 'a head past MAX_HTTP_HEAD that hides a later Host: malformed, not the first Host')
})
