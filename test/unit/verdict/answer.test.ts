import t from 'tap'
import { answer } from '../../../src/verdict/index.js'
import { AIGATE_MARK_MASK, MARK_ACCEPT, MARK_DROP, MARK_REJECT, NF_ACCEPT, NF_REPEAT } from '../../../src/verdict/marks.js'
import { NF_ACCEPT as QUEUE_NF_ACCEPT, NF_REPEAT as QUEUE_NF_REPEAT, NF_DROP as QUEUE_NF_DROP, MARK_KEEP } from '../../../src/queue/index.js'

/**
 * The hold rule, in its one place: decided and not held goes back NF_REPEAT
 * with our mark; anything else a plain NF_ACCEPT with the mark left alone.
 */
const OTHER_TOOL = 0x00000abc // a mark bit outside ours, which must survive

t.test('a decision not held: NF_REPEAT and our mark, other bits kept', async (t) => {
  for (const [action, mark] of [['allow', MARK_ACCEPT], ['monitor', MARK_ACCEPT], ['block', MARK_DROP], ['reject', MARK_REJECT]] as const) {
    const verdicts = new Uint32Array(2)
    const marks = new Uint32Array(2).fill(MARK_KEEP)
    t.equal(answer({ verdict: { action }, hold: false }, OTHER_TOOL | AIGATE_MARK_MASK, verdicts, marks, 1), true, action)
    t.equal(verdicts[1], NF_REPEAT)
    t.equal(marks[1], (OTHER_TOOL | mark) >>> 0)
    t.equal(marks[0], MARK_KEEP, 'only slot i is written')
  }
})

t.test('held or undecided: plain NF_ACCEPT, the mark as the caller left it', async (t) => {
  for (const out of [{ verdict: { action: 'allow' as const }, hold: true }, { verdict: null, hold: false }]) {
    const verdicts = new Uint32Array(1)
    const marks = new Uint32Array(1).fill(MARK_KEEP)
    t.equal(answer(out, OTHER_TOOL, verdicts, marks, 0), false)
    t.equal(verdicts[0], NF_ACCEPT)
    t.equal(marks[0], MARK_KEEP)
  }
})

t.test('the queue hands out the same NF_* values', async (t) => {
  t.equal(QUEUE_NF_ACCEPT, NF_ACCEPT)
  t.equal(QUEUE_NF_REPEAT, NF_REPEAT)
  t.equal(QUEUE_NF_DROP, 0)
})
