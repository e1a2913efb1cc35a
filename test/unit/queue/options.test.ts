// Argument checks of src/queue: they run before the addon is loaded, so this
// file needs neither root nor a built addon.
import t from 'tap'
import { Queue, QueueError, resolveOptions } from '../../../src/queue/index.js'

t.test('defaults', async (t) => {
  t.same(resolveOptions(), {
    copyRange: 4096,
    maxLen: 1024,
    failOpen: false,
    gso: true,
    verdictBatch: false,
    rcvbuf: 8 * 1024 * 1024,
    batchSize: 256,
    bufferSize: 4 * 1024 * 1024,
  })
  t.same(resolveOptions({ copyRange: undefined }).copyRange, 4096, 'undefined means default')
  t.same(resolveOptions({ copyRange: 65531, bufferSize: 65531 + 1024 }).bufferSize, 66555, 'bufferSize may be exactly copyRange + 1024')
})

t.test('queue number', async (t) => {
  const message = 'queue number must be an integer from 0 to 65535'
  t.throws(() => new Queue(-1), { name: 'RangeError', message })
  t.throws(() => new Queue(65536), { name: 'RangeError', message })
  t.throws(() => new Queue(1.5), { name: 'TypeError', message })
  t.throws(() => new Queue('1' as unknown as number), { name: 'TypeError', message })
  t.throws(() => new Queue(NaN), { name: 'TypeError', message })
})

t.test('option values', async (t) => {
  const bad: [Record<string, unknown>, string, string][] = [
    [{ copyRange: 0 }, 'RangeError', 'copyRange option must be an integer from 1 to 65531'],
    [{ copyRange: 65532 }, 'RangeError', 'copyRange option must be an integer from 1 to 65531'],
    [{ copyRange: '4096' }, 'TypeError', 'copyRange option must be an integer from 1 to 65531'],
    [{ maxLen: 0 }, 'RangeError', 'maxLen option must be an integer from 1 to 4294967295'],
    [{ maxLen: 2 ** 32 }, 'RangeError', 'maxLen option must be an integer from 1 to 4294967295'],
    [{ failOpen: 1 }, 'TypeError', 'failOpen option must be a boolean'],
    [{ gso: 'yes' }, 'TypeError', 'gso option must be a boolean'],
    [{ rcvbuf: 1024 }, 'RangeError', 'rcvbuf option must be an integer from 65536 to 1073741824'],
    [{ rcvbuf: 1e6 + 0.5 }, 'TypeError', 'rcvbuf option must be an integer from 65536 to 1073741824'],
    [{ batchSize: 0 }, 'RangeError', 'batchSize option must be an integer from 1 to 65536'],
    [{ batchSize: 65537 }, 'RangeError', 'batchSize option must be an integer from 1 to 65536'],
    [{ bufferSize: 5119 }, 'RangeError', 'bufferSize option must be an integer from 5120 to 1073741824'],
    [{ copyRange: 64, bufferSize: 1087 }, 'RangeError', 'bufferSize option must be an integer from 1088 to 1073741824'],
    [{ copyrange: 64 }, 'TypeError', 'Misspelled option "copyrange" should be "copyRange"'],
    [{ queue: 1 }, 'TypeError', 'Unknown option "queue"'],
  ]
  for (const [options, name, message] of bad) {
    t.throws(() => resolveOptions(options), { name, message }, JSON.stringify(options))
    t.throws(() => new Queue(0, options), { name, message }, `new Queue(0, ${JSON.stringify(options)})`)
  }
  t.throws(() => resolveOptions(null as unknown as object), { name: 'TypeError', message: 'options must be an object' })
})

t.test('QueueError', async (t) => {
  const e = new QueueError('NFQUEUE 3: recv failed', 'EBADF', -9, 'recv')
  t.match(e, { name: 'QueueError', message: 'NFQUEUE 3: recv failed', code: 'EBADF', errno: -9, syscall: 'recv' })
  t.ok(e instanceof Error)
  t.match(String(e.stack), /^QueueError: NFQUEUE 3: recv failed/)
})
