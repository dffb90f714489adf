// A weak password that is also an ordinary word or number of etl's output (postgres, connect, 127):
// it is hidden where it stands as the password (user:***@, password=***), and the rest of the output
// reads as usual. Hiding every occurrence of the word would mangle the text ("***ql://",
// "cannot *** to") and, worse, tell the reader which word the password is.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PIPELINE_YAML } from '../audit/staged-run.ts';
import { etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { writeFile } from 'node:fs/promises';
import { redactText } from '../../errors/redact.ts';
import path from 'node:path';

const CASES: readonly (readonly [string, string, RegExp])[] = [
  ['postgres', 'postgresql://pgw:postgres@127.0.0.1:1/app', /cannot connect to PostgreSQL at postgresql:\/\/pgw:\*\*\*@127\.0\.0\.1:1\/app: connect ECONNREFUSED 127\.0\.0\.1:1/],
  ['connect', 'postgresql://pgw:connect@127.0.0.1:1/app', /cannot connect to PostgreSQL at postgresql:\/\/pgw:\*\*\*@127\.0\.0\.1:1\/app/],
  ['127', 'postgresql://pgw:127@127.0.0.1:1/app', /at postgresql:\/\/pgw:\*\*\*@127\.0\.0\.1:1\/app: connect ECONNREFUSED 127\.0\.0\.1:1/],
];

test('a password that is a common word: hidden as the password, the rest of the message intact (text, --json, -v)', async (t) => {
  const cwd = await tempDir('etl-word-pw-', t);
  await writeFile(path.join(cwd, 'pipeline.yaml'), PIPELINE_YAML);
  for (const [pw, url, expected] of CASES) {
    for (const flags of [[], ['--json'], ['-v']]) {
      const r = await etl(['status', ...flags], { cwd, env: { DATABASE_URL: url } });
      assert.equal(r.code, 1, r.output);
      assert.match(r.output, expected, `password ${pw} ${flags.join(' ')}`);
      assert.ok(!r.output.includes(`:${pw}@`), r.output);
    }
  }
});

test('a longer password of letters only is still hidden wherever it appears, outside any URL too', () => {
  const text = 'TRANSFER_SOURCE must be "local" or "remote", got "wappizyprod" (postgresql://pgw:wappizyprod@h/app)';
  const shown = redactText(text, ['wappizyprod']);
  assert.ok(!shown.includes('wappizyprod'), shown);
  assert.equal(redactText('cannot connect to postgres', ['postgres']), 'cannot connect to postgres');
});
