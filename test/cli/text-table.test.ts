// The plain-text tables every command prints: a cell's text may come from input (a table name in
// pipeline.yaml, a dump's path in a run's manifest), so its terminal controls are shown escaped,
// never sent to the operator's terminal, and the columns stay aligned on what is shown.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTable } from '../../report/text-table.ts';

test('a cell holding terminal controls is printed with them escaped, and the columns align on the escaped text', () => {
  const text = formatTable(['source', 'rows'], [['dump\u001b[2J\rX', 12], ['plain', 3]]);
  assert.equal(text.includes('\u001b') || text.includes('\r'), false, 'no control reaches the terminal');
  const lines = text.trimEnd().split('\n');
  assert.equal(lines[2], 'dump\\u001b[2J\\u000dX    12');
  assert.equal(lines[3], `plain${' '.repeat(15)}     3`);
});

test('a header holding a control is escaped too', () => {
  const text = formatTable(['a\u0007b'], [['x']]);
  assert.equal(text.split('\n')[0], 'a\\u0007b');
});
