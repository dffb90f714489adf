// Small inline SVG charts for the HTML report: no script, no library, no external asset. Every
// value is also in a <title> (hover) and in the tables of the report, so nothing is only drawn.
import { escapeHtml } from './html.ts';

export interface Bar {
  readonly label: string;
  /** Stacked segments, bottom first. */
  readonly parts: readonly { readonly value: number; readonly color: string; readonly name: string }[];
}

const W = 720;
const H = 170;
const PAD = { left: 56, right: 12, top: 12, bottom: 40 };

/** Where a column of a column chart stands: its left edge, its width, and the y of a value. */
interface Column {
  readonly x: number;
  readonly width: number;
  readonly y: (v: number) => number;
}

/**
 * Columns side by side over a y axis from 0 to `max`, each labelled below (labelledBars), the
 * title and unit under the plot: what every column chart of the report shares. `draw` gives the
 * marks of column i.
 */
function columnChart(title: string, unit: string, format: (v: number) => string, max: number, columns: readonly { readonly label: string }[], minWidth: number, draw: (i: number, c: Column) => string): string {
  const top = Math.max(1e-9, max);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, columns.length);
  const width = Math.max(minWidth, Math.min(48, slot * 0.7));
  const y = (v: number) => PAD.top + plotH - (v / top) * plotH;
  const shown = labelledBars(columns, slot);
  const out: string[] = [];
  for (const [i, column] of columns.entries()) {
    const x = PAD.left + i * slot + (slot - width) / 2;
    out.push(draw(i, { x, width, y }));
    if (shown(i)) out.push(`<text x="${(x + width / 2).toFixed(1)}" y="${H - PAD.bottom + 14}" font-size="10" text-anchor="middle">${escapeHtml(column.label)}</text>`);
  }
  const axis = [0, 0.5, 1].map(
    (f) => `<text x="${PAD.left - 6}" y="${(y(top * f) + 3).toFixed(1)}" font-size="10" text-anchor="end">${escapeHtml(format(top * f))}</text><line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(top * f).toFixed(1)}" y2="${y(top * f).toFixed(1)}" stroke="#ddd"/>`,
  );
  return `<svg role="img" aria-label="${escapeHtml(title)}" viewBox="0 0 ${W} ${H}" width="100%" xmlns="http://www.w3.org/2000/svg">${axis.join('')}${out.join('')}<text x="${PAD.left}" y="${H - 6}" font-size="11">${escapeHtml(`${title} (${unit})`)}</text></svg>`;
}

/** A rectangle of a column from value `from` to value `to`, its <title> the tip. */
function span(c: Column, x: number, width: number, from: number, to: number, fill: string, tip: string): string {
  return `<rect x="${x.toFixed(1)}" y="${c.y(to).toFixed(1)}" width="${width.toFixed(1)}" height="${Math.max(0, c.y(from) - c.y(to)).toFixed(1)}" fill="${fill}"><title>${escapeHtml(tip)}</title></rect>`;
}

/** A vertical bar chart (stacked when a bar has several parts), y axis from 0 to the largest total. */
export function barChart(title: string, bars: readonly Bar[], unit: string, format: (v: number) => string): string {
  const max = Math.max(...bars.map((b) => b.parts.reduce((a, p) => a + p.value, 0)));
  return columnChart(title, unit, format, max, bars, 2, (i, c) => {
    const b = bars[i]!;
    let base = 0;
    let marks = '';
    for (const p of b.parts) {
      marks += span(c, c.x, c.width, base, base + p.value, p.color, `${b.label} ${p.name}: ${format(p.value)} ${unit}`);
      base += p.value;
    }
    return marks;
  });
}

export interface RunSpans {
  readonly label: string;
  /** Names the run's group (`data-key`). */
  readonly key: string;
  /** From the first stage's start to the last one's end. */
  readonly wall: number;
  /** Each stage from its start to its end, on the run's own clock (0: its first stage's start). */
  readonly spans: readonly { readonly name: string; readonly color: string; readonly from: number; readonly to: number }[];
}

/**
 * Per run, its stages on a common time axis: a bar per stage from its start to its end (side by
 * side), over a pale bar of the run's wall time. Stages that overlap (`etl run`) are drawn
 * overlapping in time, so no bar reaches above what the run took (stacking them did).
 */
export function spanChart(title: string, runs: readonly RunSpans[], unit: string, format: (v: number) => string): string {
  const max = Math.max(...runs.map((r) => r.wall));
  return columnChart(title, unit, format, max, runs, 3, (i, c) => {
    const r = runs[i]!;
    const lane = c.width / Math.max(1, r.spans.length);
    const bars = [span(c, c.x, c.width, 0, r.wall, '#e4e4e4', `${r.label} wall time: ${format(r.wall)} ${unit}`)];
    for (const [j, p] of r.spans.entries()) bars.push(span(c, c.x + j * lane, Math.max(1, lane - 1), p.from, p.to, p.color, `${r.label} ${p.name}: ${format(p.to - p.from)} ${unit}, from ${format(p.from)} to ${format(p.to)}`));
    return `<g data-key="${escapeHtml(r.key)}">${bars.join('')}</g>`;
  });
}

/** Width of a label's character at font-size 10, with room to spare (a digit is about 5.6). */
const LABEL_CHAR = 6;

/**
 * Which bars get their label drawn under them: every one when the labels fit their slots, else one
 * every few bars, the last always (the newest run). Every bar keeps its label in its <title>.
 */
function labelledBars(bars: readonly { readonly label: string }[], slot: number): (i: number) => boolean {
  const widest = Math.max(0, ...bars.map((b) => b.label.length)) * LABEL_CHAR + LABEL_CHAR;
  const every = Math.max(1, Math.ceil(widest / slot));
  const last = bars.length - 1;
  return (i) => i === last || (i % every === 0 && last - i >= every);
}

/** A horizontal timeline: one bar per stage from its start to its end, on a common time axis. */
export function timeline(spans: readonly { readonly label: string; readonly start: number; readonly end: number; readonly color: string }[]): string {
  if (spans.length === 0) return '';
  const t0 = Math.min(...spans.map((s) => s.start));
  const t1 = Math.max(...spans.map((s) => s.end), t0 + 1);
  const rowH = 22;
  const height = spans.length * rowH + 8;
  const left = 90;
  const x = (t: number) => left + ((t - t0) / (t1 - t0)) * (W - left - PAD.right);
  const rows = spans.map((s, i) => {
    const top = 4 + i * rowH;
    const secs = ((s.end - s.start) / 1000).toFixed(2);
    return (
      `<text x="${left - 6}" y="${top + 14}" font-size="11" text-anchor="end">${escapeHtml(s.label)}</text>` +
      `<rect x="${x(s.start).toFixed(1)}" y="${top}" width="${Math.max(1, x(s.end) - x(s.start)).toFixed(1)}" height="${rowH - 6}" fill="${s.color}"><title>${escapeHtml(`${s.label}: ${secs} s`)}</title></rect>` +
      `<text x="${(x(s.end) + 4).toFixed(1)}" y="${top + 13}" font-size="10">${secs} s</text>`
    );
  });
  return `<svg role="img" aria-label="stage timeline" viewBox="0 0 ${W + 40} ${height}" width="100%" xmlns="http://www.w3.org/2000/svg">${rows.join('')}</svg>`;
}
