import t from 'tap'
import { parseHttp, HttpHead, skipEmptyLines, MAX_LEADING_EMPTY } from '../../src/extract/http.js'
import { readName, NameOut } from '../../src/name/index.js'
import { Status } from '../../src/util/status.js'

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
