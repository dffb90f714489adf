// CSV lines of staged rows (transform's files, diff's expected rows), written directly, with exactly the codec of staging/csv.ts.
//
// Why not csv-stringify per row: on a million documents (≈3 million staged rows) csvWriter (one row
// per write(), a few allocations per field) cost half of the stage's time, and even batched through
// csv-stringify/sync the rows that need quoting (texts holding a comma: descriptions, comments) cost
// a tenth of it (normalized options and a [value, field] pair per cell, per call). So transform
// writes each line itself, with csvWriter's rules, which are few (staging/csv.ts):
// - cells joined by `,`, rows ended by `\n`, NULL as nothing;
// - a cell is quoted (`"…"`, inner `"` doubled) when it holds `,` `"` LF or CR, or is '' or `\.`.
// The header still comes from csv-stringify. test/transform/csv-batches.test.ts holds every line
// byte-equal to csvWriter's for every kind of cell.
import { stringify } from 'csv-stringify/sync';
import { csvWriter, type Cell } from './csv.ts';

type StringifyOptions = NonNullable<Parameters<typeof stringify>[1]>;

/** csvWriter's normalized options, minus its stream's per-record event hook. */
function codecOptions(columns: readonly string[]): StringifyOptions {
  const writer = csvWriter(columns);
  const options: Record<string, unknown> = { ...(writer as unknown as { options: Record<string, unknown> }).options };
  writer.destroy();
  delete options.on_record;
  return options as StringifyOptions;
}

/** The header line (with its `\n`), as csvWriter writes it. */
export function csvHeader(columns: readonly string[]): string {
  return stringify([], { ...codecOptions(columns), header: true });
}

/** Characters that make csvWriter quote a cell: delimiter, quote, LF, and CR (its quoted_match). */
const NEEDS_QUOTES = /[,"\n\r]/;
const QUOTES = /"/g;

/** One cell as csvWriter writes it (a non-null cell). */
export function csvField(cell: string): string {
  if (cell === '' || cell === '\\.') return `"${cell}"`;
  if (!NEEDS_QUOTES.test(cell)) return cell;
  return `"${cell.replace(QUOTES, '""')}"`;
}

/**
 * One row's line, without its `\n`. `textual[i]` false: column i only ever holds cells made by the
 * converters from digits, signs, `-` `:` `.` `E`, spaces and true/false (integers, numerics,
 * booleans, timestamps, dates), which never need quoting, so they are not inspected. null: every
 * column is inspected.
 */
export function csvLine(row: readonly Cell[], textual: readonly boolean[] | null): string {
  let quoted: Cell[] | null = null;
  for (let i = 0; i < row.length; i += 1) {
    const cell = row[i]!;
    if (cell === null || (textual !== null && !textual[i])) continue;
    const field = csvField(cell);
    if (field === cell) continue;
    quoted ??= row.slice();
    quoted[i] = field;
  }
  // join() writes one flat string (NULL as nothing); building it by += made a rope per line that
  // the stream write then had to flatten, piece by piece.
  return (quoted ?? row).join(',');
}
