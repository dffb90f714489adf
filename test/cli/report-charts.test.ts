// The report's bar charts as a real headless Chromium draws them: with the 20 runs the history
// shows, every label under the bars must stay readable (no two drawn over each other).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withChromiumPage } from '../harness/chromium.ts';
import { barChart } from '../../report/svg-chart.ts';

/** The boxes of the labels under the bars, as Chromium lays them out (a string: tsx would compile a function with helpers the page lacks). */
const LABEL_BOXES = `[...document.querySelectorAll('svg text[text-anchor=middle]')].map((t) => { const r = t.getBoundingClientRect(); return { text: t.textContent, left: r.left, right: r.right }; })`;

test('20 bars: no label drawn over another (the 20 labels of the runs\' history overlapped into an unreadable line)', async (t) => {
  const bars = Array.from({ length: 20 }, (_, i) => ({ label: `12-07 19:${String(10 + i).padStart(2, '0')}`, parts: [{ value: i + 1, color: '#59a14f', name: 'rows' }] }));
  const svg = barChart('rows staged per run', bars, 'rows', (v) => String(v));
  await withChromiumPage(t, async (page) => {
    // The width the report gives its charts (body max-width 1100px).
    await page.setContent(`<!DOCTYPE html><html><body style="max-width:1100px;margin:2rem auto;padding:0 1rem">${svg}</body></html>`);
    const boxes = (await page.evaluate(LABEL_BOXES)) as { text: string; left: number; right: number }[];
    assert.ok(boxes.length >= 2, `labels: ${boxes.length}`);
    for (let i = 1; i < boxes.length; i++) assert.ok(boxes[i]!.left >= boxes[i - 1]!.right, `"${boxes[i - 1]!.text}" and "${boxes[i]!.text}" overlap: ${JSON.stringify([boxes[i - 1], boxes[i]])}`);
    // The first and the last run are named; every bar keeps its label in its <title>.
    assert.equal(boxes[0]!.text, '12-07 19:10');
    assert.equal(boxes[boxes.length - 1]!.text, '12-07 19:29');
    assert.equal((svg.match(/<title>12-07 19:\d\d rows: /g) ?? []).length, 20);
  });
});
