import { inflateSync } from 'node:zlib'

/**
 * Just enough of PNG (RFC 2083; https://www.w3.org/TR/png-3/) to look at a
 * browser's screenshot: 8-bit truecolour with or without alpha, not
 * interlaced, which is what Chromium writes. Pixels come back as 0xRRGGBB.
 */

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

export interface Image { width: number, height: number, pixel: (x: number, y: number) => number }

/** Paeth predictor, PNG §9.4. */
function paeth (a: number, b: number, c: number): number {
  const p = a + b - c
  const pa = Math.abs(p - a)
  const pb = Math.abs(p - b)
  const pc = Math.abs(p - c)
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
}

export function decodePng (png: Buffer): Image {
  if (!png.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG')
  let width = 0
  let height = 0
  let channels = 0
  const idat: Buffer[] = []
  for (let p = 8; p + 8 <= png.length;) {
    const len = png.readUInt32BE(p)
    const type = png.toString('latin1', p + 4, p + 8)
    const data = png.subarray(p + 8, p + 8 + len)
    if (type === 'IHDR') {
      width = data.readUInt32BE(0)
      height = data.readUInt32BE(4)
      const depth = data[8]
      const colour = data[9]
      if (depth !== 8 || (colour !== 2 && colour !== 6) || data[12] !== 0) throw new Error(`PNG depth ${depth} colour type ${colour} interlace ${data[12]}: not read here`)
      channels = colour === 6 ? 4 : 3
    } else if (type === 'IDAT') {
      idat.push(data)
    } else if (type === 'IEND') {
      break
    }
    p += 12 + len
  }
  const raw = inflateSync(Buffer.concat(idat))
  const stride = width * channels
  const out = Buffer.alloc(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    const src = y * (stride + 1) + 1
    const dst = y * stride
    for (let i = 0; i < stride; i++) {
      const x = raw[src + i] as number
      const a = i >= channels ? out[dst + i - channels] as number : 0
      const b = y > 0 ? out[dst - stride + i] as number : 0
      const c = y > 0 && i >= channels ? out[dst - stride + i - channels] as number : 0
      const v = filter === 0 ? x : filter === 1 ? x + a : filter === 2 ? x + b : filter === 3 ? x + ((a + b) >> 1) : x + paeth(a, b, c)
      out[dst + i] = v & 0xff
    }
  }
  return {
    width,
    height,
    pixel: (x, y) => {
      const o = y * stride + x * channels
      return ((out[o] as number) << 16) | ((out[o + 1] as number) << 8) | (out[o + 2] as number)
    },
  }
}
