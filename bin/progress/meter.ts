// How far along a piece of work is, in words: counts, percent, rate and time left. One place for
// the numbers every renderer shows (the live list, log heartbeats, verbose lines, final lines).

import { duration } from '../../staging/durations.ts';

// The CLI's renderers take it from here with the other words of progress.
export { duration };

export const count = (n: number): string => n.toLocaleString('en-US');

export interface Gauge {
  readonly done: number;
  /** null: the total is not known (no count, no manifest figure). */
  readonly total: number | null;
  readonly elapsedMs: number;
  /** documents, rows… */
  readonly unit: string;
}

function percent(g: Gauge): number | null {
  if (g.total === null || g.total <= 0) return null;
  return Math.min(100, Math.floor((g.done * 100) / g.total));
}

/** Items a second, once there is enough to measure. */
function rate(g: Gauge): number | null {
  return g.elapsedMs >= 500 && g.done > 0 ? (g.done * 1000) / g.elapsedMs : null;
}

function etaMs(g: Gauge): number | null {
  const r = rate(g);
  if (r === null || g.total === null || g.done >= g.total) return null;
  return ((g.total - g.done) / r) * 1000;
}

/** `12,345 of 20,000 documents (61%), 5,432/s, ETA 2.10 s` — the parts that are known. */
export function gaugeText(g: Gauge): string {
  const p = percent(g);
  const parts = [`${count(g.done)}${g.total !== null ? ` of ${count(g.total)}` : ''} ${g.unit}${p !== null ? ` (${p}%)` : ''}`];
  const r = rate(g);
  if (r !== null) parts.push(`${count(Math.round(r))}/s`);
  const eta = etaMs(g);
  if (eta !== null) parts.push(`ETA ${duration(eta)}`);
  return parts.join(', ');
}

/** A bar for the terminal: ▕██████░░░░▏ */
export function bar(g: Gauge, width = 20): string {
  const p = percent(g);
  if (p === null) return '';
  const full = Math.round((p / 100) * width);
  return `▕${'█'.repeat(full)}${'░'.repeat(width - full)}▏ `;
}
