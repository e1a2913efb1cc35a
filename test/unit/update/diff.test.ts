import t from 'tap'
import { diffLists, diffText, entriesByVendor } from '../../../src/update/diff.js'

/** The diff `aigate rules update` prints: names added and removed per vendor, as the loader reads the lists. */

const list = (vendor: string, ...entries: string[]): { file: string, text: string } =>
  ({ file: `/r/${vendor}.txt`, text: `# vendor: ${vendor}\n# category: ai\n${entries.join('\n')}\n` })

t.test('added, removed, new lists, header-only changes; unchanged and old-only lists are not reported', async (t) => {
  const before = entriesByVendor([list('a', 'a.example', 'old.a.example'), list('b', 'b.example'), list('c', 'c.example'), list('gone', 'g.example')])
  const after = entriesByVendor([
    list('a', 'a.example', '=api.a.example', 'Bad.Example', 'x.a.example'), // read as the loader reads: a refused line is no entry (lint says why)
    { file: '/n/b.txt', text: '# vendor: b\n# title: B\n# category: ai\nb.example\n' },
    list('c', 'c.example'),
    list('new', 'n.example', 'm.example'),
  ])
  const d = diffLists(before, after)
  t.same(d, [
    { vendor: 'a', kind: 'changed', added: ['=api.a.example', 'x.a.example'], removed: ['old.a.example'] },
    { vendor: 'b', kind: 'headers', added: [], removed: [] },
    { vendor: 'new', kind: 'new', added: ['m.example', 'n.example'], removed: [] },
  ])
  t.same(diffText(d), [
    'a: 2 added, 1 removed', '  + =api.a.example', '  + x.a.example', '  - old.a.example',
    'b: the same entries, header lines changed',
    'new: new list, 2 entries', '  + m.example', '  + n.example',
  ])
  t.same(diffLists(before, before), [], 'the same lists: nothing')
})
