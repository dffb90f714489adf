// Progress in logs: nothing per table, a heartbeat line for long work (totals, percent, rate, time
// left), the stage's end line in multi-stage commands; the numbers every renderer shows.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { CommandContext } from '../../bin/command.ts';
import { logStage } from '../../bin/progress/lines.ts';
import { duration, gaugeText } from '../../bin/progress/meter.ts';
import { StageState } from '../../bin/progress/stage-state.ts';

function context(env: Record<string, string>) {
  const stderr = new PassThrough();
  let text = '';
  stderr.setEncoding('utf8').on('data', (s: string) => (text += s));
  const ctx = { argv: [], env, cwd: '/', stdout: new PassThrough(), stderr, signal: new AbortController().signal } as unknown as CommandContext;
  return { ctx, text: () => text };
}

test('a long stage in a log: heartbeat lines with totals, percent, rate and time left; then its end line', async () => {
  const { ctx, text } = context({ ETL_PROGRESS_SECONDS: '0.2' });
  const state = new StageState('transform', 'Transform');
  state.plan('Transform run X', [{ name: 'users', total: 1000 }, { name: 'days', total: 3000 }], 'documents');
  const rated = () => /\(\d+%\), [\d,]+\/s, ETA [\d.]+ (s|min)/.test(text());
  // Until a heartbeat showed the rate (timers run late on a busy machine), at most ten seconds.
  const work = (async () => {
    const start = Date.now();
    for (let done = 0; done < 1000 || (!rated() && Date.now() - start < 10_000); done += 10) {
      state.progress('users', Math.min(done, 990));
      await new Promise((r) => setTimeout(r, 10));
    }
    state.finish('users', 'users: 1,000 documents');
    return 'report';
  })();
  const r = await logStage(ctx, state, work, (x) => `transform: done with ${x}`);
  assert.equal(r, 'report');
  const lines = text().trimEnd().split('\n');
  assert.ok(lines.length >= 3, text());
  for (const l of lines.slice(0, -1)) assert.match(l, /^transform: [\d,]+ of 4,000 documents \(\d+%\).*; now users$/);
  // Once half a second went by, the rate and the time left are known.
  assert.ok(lines.some((l) => /\(\d+%\), [\d,]+\/s, ETA [\d.]+ (s|min)/.test(l)), text());
  assert.equal(lines.at(-1), 'transform: done with report');
});

test('a short stage in a log prints nothing of its own (the summary table and final line say it all)', async () => {
  const { ctx, text } = context({});
  const state = new StageState('extract', 'Extract');
  state.plan('Extract', [{ name: 'users', total: 10 }], 'documents');
  await logStage(ctx, state, Promise.resolve(1), null);
  assert.equal(text(), '');
});

test('gauges: counts with separators, percent, rate and ETA only when known; durations people read', () => {
  assert.equal(gaugeText({ done: 12345, total: 20000, elapsedMs: 2000, unit: 'documents' }), '12,345 of 20,000 documents (61%), 6,173/s, ETA 1.24 s');
  assert.equal(gaugeText({ done: 5, total: null, elapsedMs: 100, unit: 'rows' }), '5 rows');
  assert.equal(duration(420), '0.42 s');
  assert.equal(duration(12_340), '12.3 s');
  assert.equal(duration(125_000), '2 min 05 s');
  assert.equal(duration(3_720_000), '1 h 02 min');
});
