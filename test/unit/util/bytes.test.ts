import t from 'tap'
import { u16, u24, u32 } from '../../../src/util/bytes.js'
import { Status, statusName } from '../../../src/util/status.js'

/** util/: the big-endian readers every parser uses, and the status names logs and metrics print. */

t.test('big-endian readers at an offset; u32 is unsigned', async (t) => {
  const b = Uint8Array.from([0x00, 0x01, 0x02, 0x03, 0xff, 0xff, 0xff, 0xff])
  t.equal(u16(b, 1), 0x0102)
  t.equal(u24(b, 1), 0x010203)
  t.equal(u32(b, 0), 0x00010203)
  t.equal(u32(b, 4), 0xffffffff, 'the top bit set: not negative')
})

t.test('status names are stable text', async (t) => {
  t.same([Status.Ok, Status.NeedMore, Status.Malformed, Status.Unsupported, Status.NoName].map(statusName),
    ['ok', 'need-more', 'malformed', 'unsupported', 'no-name'])
})
