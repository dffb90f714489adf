// Plain-text tables for terminals and logs: the per-table summaries the commands print, and the
// benchmark tables. Numbers are right-aligned with thousands separators; text is left-aligned.
// With a width limit, the text columns that may shrink are cut (with …) until the table fits.
// A cell's text may come from input (a table name, a dump's path): its controls are shown escaped.
import { escapeControls } from '../errors/printable.ts';

export type Cell = string | number;

export interface TableOptions {
  /** Widest line allowed (e.g. 100 columns); no limit when absent. */
  readonly maxWidth?: number;
  /** Per column: the narrowest a text column may be cut to; absent = never cut. */
  readonly minWidths?: readonly (number | undefined)[];
}

const GAP = 2;

export function formatTable(headers: readonly string[], rows: readonly (readonly Cell[])[], options: TableOptions = {}): string {
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] === '-' || r[i] === undefined));
  const text = [headers.map(escapeControls), ...rows.map((r) => headers.map((_, i) => cellText(r[i])))];
  const widths = fitWidths(
    headers.map((_, i) => Math.max(...text.map((r) => r[i]!.length))),
    options,
  );
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => {
        const cut = cutText(c, widths[i]!);
        return numeric[i] ? cut.padStart(widths[i]!) : cut.padEnd(widths[i]!);
      })
      .join(' '.repeat(GAP))
      .trimEnd();
  return [line(text[0]!), widths.map((w) => '-'.repeat(w)).join(' '.repeat(GAP)), ...text.slice(1).map(line)].join('\n') + '\n';
}

function cellText(c: Cell | undefined): string {
  if (c === undefined) return '';
  return typeof c === 'number' ? c.toLocaleString('en-US') : escapeControls(c);
}

/** Cuts text to `width` characters, ending in … when something was cut. */
export function cutText(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/** Text as lines of at most `width` characters, broken between words, each starting with `indent`. */
export function wrapText(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = indent;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line.length > indent.length && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent;
    }
    line += line.length > indent.length ? ` ${word}` : word;
  }
  if (line.length > indent.length) lines.push(line);
  return lines;
}

/** Shrinks the shrinkable columns, widest excess first, until the line fits (or none can shrink). */
function fitWidths(natural: number[], options: TableOptions): number[] {
  const widths = [...natural];
  const max = options.maxWidth;
  if (max === undefined) return widths;
  const total = () => widths.reduce((a, b) => a + b, 0) + GAP * (widths.length - 1);
  while (total() > max) {
    let best = -1;
    for (let i = 0; i < widths.length; i++) {
      const min = options.minWidths?.[i];
      if (min === undefined || widths[i]! <= min) continue;
      if (best === -1 || widths[i]! - min > widths[best]! - options.minWidths![best]!) best = i;
    }
    if (best === -1) break;
    widths[best] = widths[best]! - 1;
  }
  return widths;
}
