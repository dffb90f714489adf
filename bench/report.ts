// The printed table of a bench run: one line a measured step, then each comparison with its goal.
import { formatTable } from '../report/text-table.ts';
import type { BenchmarkResult } from './benchmarks.ts';
import type { StepFigures } from './figures.ts';

const num = (n: number | null, digits = 0): string => (n === null ? '–' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));

function stepRow(bench: string, s: StepFigures): string[] {
  return [
    bench,
    s.label,
    num(s.seconds, 2),
    s.cpu_seconds === null ? '–' : num(s.cpu_seconds, 2),
    `${num(s.count)} ${s.unit === 'documents' ? 'docs' : 'rows'}`,
    `${num(s.per_second)}/s`,
    s.peak_rss_mib === null ? '–' : `${num(s.peak_rss_mib)} MiB`,
  ];
}

export function formatResults(results: readonly BenchmarkResult[]): string {
  const rows: string[][] = [];
  for (const r of results) {
    for (const s of Object.values(r.steps)) rows.push(stepRow(r.name, s));
  }
  // cpu s: user + system CPU seconds of the step (every thread; psql: its whole process, not the server's).
  let out = formatTable(['benchmark', 'step', 'seconds', 'cpu s', 'count', 'rate', 'peak RSS'], rows);
  const lines: string[] = [];
  for (const r of results) {
    if (r.status === 'failed') lines.push(`${r.name.padEnd(11)} FAILED: ${r.error ?? ''}`);
    for (const c of Object.values(r.comparisons)) {
      const verdict = c.met === null ? (c.goal === null ? 'no goal' : 'n/a') : c.met ? 'goal met' : 'goal NOT met';
      lines.push(`${r.name.padEnd(11)} ${c.ratio_of}: ${c.ratio === null ? '–' : num(c.ratio, 3)}${c.goal ? ` (goal ${c.goal})` : ''}  ${verdict}`);
    }
    for (const n of r.notes) lines.push(`${r.name.padEnd(11)} note: ${n}`);
  }
  if (lines.length) out += `\n${lines.join('\n')}\n`;
  return out;
}
