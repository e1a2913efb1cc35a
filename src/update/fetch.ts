import { get, type RequestOptions } from 'node:https'
import { rootCertificates } from 'node:tls'
import { fileURLToPath } from 'node:url'
import type { IncomingMessage } from 'node:http'
import { bytesText, readFileBytes, ReadError } from '../config/read.js'

/**
 * Fetching a list for `aigate rules update`: node:https (no shell, no curl),
 * certificates checked against the system's roots (plus NODE_EXTRA_CA_CERTS,
 * or --ca), one deadline for the whole fetch including redirects, a size cap
 * counted while reading, and a body that must be complete: a connection that
 * ends before Content-Length bytes (or mid-chunk) is "truncated", never a
 * shorter list. file:// reads a local mirror with the same cap.
 */

export interface FetchOptions {
  /** The whole fetch, redirects included, in milliseconds. */
  readonly timeoutMs: number
  /** The most bytes the body may have. */
  readonly maxBytes: number
  /** PEM certificates trusted besides the system's roots (a local mirror's own CA). */
  readonly ca?: string
  readonly userAgent?: string
}

/** Redirects followed (a GitHub release asset redirects once, to its storage). */
export const MAX_REDIRECTS = 5

export class FetchError extends Error {
  override readonly name = 'FetchError'
}

export async function fetchBytes (url: URL, opts: FetchOptions): Promise<Buffer> {
  if (url.protocol === 'file:') {
    try {
      return readFileBytes(fileURLToPath(url), 'list', opts.maxBytes)
    } catch (err) {
      if (err instanceof ReadError) throw new FetchError(err.message)
      throw err
    }
  }
  const deadline = Date.now() + opts.timeoutMs
  let at = url
  for (let hop = 0; ; hop++) {
    const r = await fetchOnce(at, opts, deadline)
    if ('body' in r) return r.body
    if (hop >= MAX_REDIRECTS) throw new FetchError(`${url.href}: more than ${MAX_REDIRECTS} redirects`)
    const next = new URL(r.location, at)
    if (next.protocol !== 'https:') throw new FetchError(`${at.href}: redirected to ${next.protocol}//${next.host}, not https`)
    at = next
  }
}

function fetchOnce (url: URL, opts: FetchOptions, deadline: number): Promise<{ body: Buffer } | { location: string }> {
  return new Promise((resolve, reject) => {
    const left = deadline - Date.now()
    if (left <= 0) { reject(new FetchError(`${url.href}: no answer in ${opts.timeoutMs / 1000} s`)); return }
    const ro: RequestOptions = {
      headers: { 'user-agent': opts.userAgent ?? 'aigate', accept: '*/*', 'accept-encoding': 'identity' },
      // The default agent would keep the connection open past the command.
      agent: false,
    }
    if (opts.ca !== undefined) ro.ca = [...rootCertificates, opts.ca]
    let settled = false
    const fail = (msg: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      reject(new FetchError(`${url.href}: ${msg}`))
    }
    const timer = setTimeout(() => { fail(`no complete answer in ${opts.timeoutMs / 1000} s`) }, left)
    const req = get(url, ro, (res: IncomingMessage) => {
      const status = res.statusCode ?? 0
      if ([301, 302, 303, 307, 308].includes(status) && typeof res.headers.location === 'string') {
        settled = true
        clearTimeout(timer)
        res.resume()
        req.destroy()
        resolve({ location: res.headers.location })
        return
      }
      if (status !== 200) { res.resume(); fail(`HTTP ${status}${res.statusMessage !== undefined && res.statusMessage !== '' ? ` ${res.statusMessage}` : ''}`); return }
      const cl = res.headers['content-length']
      const expected = cl === undefined ? null : Number(cl)
      if (expected !== null && (!Number.isSafeInteger(expected) || expected < 0)) { fail(`bad Content-Length "${cl}"`); return }
      if (expected !== null && expected > opts.maxBytes) { fail(`${expected} bytes, larger than ${bytesText(opts.maxBytes)}, the most a list may hold`); return }
      const chunks: Buffer[] = []
      let total = 0
      res.on('data', (c: Buffer) => {
        total += c.length
        if (total > opts.maxBytes) { fail(`larger than ${bytesText(opts.maxBytes)}, the most a list may hold`); return }
        chunks.push(c)
      })
      const truncated = (): string => `truncated: the connection ended after ${total}${expected === null ? '' : ` of ${expected}`} bytes`
      res.on('end', () => {
        // `complete` is false when the body ended before its length (or its last chunk) arrived.
        if (!res.complete || (expected !== null && total !== expected)) { fail(truncated()); return }
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve({ body: Buffer.concat(chunks, total) })
      })
      res.on('error', () => { fail(truncated()) })
      res.on('close', () => { if (!res.complete) fail(truncated()) })
    })
    req.on('error', (err: NodeJS.ErrnoException) => {
      fail(err.code === 'ECONNREFUSED'
        ? 'connection refused'
        : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
          ? `cannot resolve ${url.hostname} (${err.code})`
          : `${err.code ?? 'error'}: ${err.message}`)
    })
  })
}
