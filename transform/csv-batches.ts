// CSV text for batches of rows, with exactly the codec of staging/csv.ts.
//
// Why: on a million documents (≈3 million staged rows) csvWriter (one row per write(), a few
// allocations per field) cost half of the stage's time. Two changes, same bytes:
// - rows travel in batches, and a batch's rows that need quoting go through csv-stringify in one
//   call, with the options read from a csvWriter instance, so the codec cannot drift;
// - a row none of whose cells needs quoting (no `,` `"` CR LF, not '' nor `\.`) is what
//   csv-stringify writes for it anyway: the cells joined by commas, NULL as nothing. That is most
//   rows (ids, timestamps, dates), and they take that shortcut.
// test/transform/csv-batches.test.ts holds the output byte-equal to csvWriter's.
import { Transform } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import { csvWriter, type Cell } from '../staging/csv.ts';

type StringifyOptions = NonNullable<Parameters<typeof stringify>[1]>;

/** csvWriter's normalized options, minus its stream's per-record event hook. */
function codecOptions(columns: readonly string[]): StringifyOptions {
  const writer = csvWriter(columns);
  const options: Record<string, unknown> = { ...(writer as unknown as { options: Record<string, unknown> }).options };
  writer.destroy();
  delete options.on_record;
  return options as StringifyOptions;
}

/** Characters that make csv-stringify quote a cell (delimiter, quote, record delimiter) and CR, to be safe. */
const NEEDS_CODEC = /[,"\n\r]/;

function plain(cell: Cell): boolean {
  return cell === null || (cell !== '' && cell !== '\\.' && !NEEDS_CODEC.test(cell));
}

/**
 * `textual[i]` false: column i only ever holds cells made by the converters from digits, signs,
 * `-` `:` `.` `E`, spaces and true/false (integers, numerics, booleans, timestamps, dates), which
 * never need quoting, so they are not inspected. Default: every column is inspected.
 */
function rowIsPlain(row: readonly Cell[], textual: readonly boolean[] | null): boolean {
  for (let i = 0; i < row.length; i += 1) {
    if ((textual === null || textual[i]) && !plain(row[i]!)) return false;
  }
  return true;
}

/** A Transform from arrays of rows (cells in `columns` order) to CSV text, header first (also when no row comes). */
export function csvBatchWriter(columns: readonly string[], textual: readonly boolean[] | null = null): Transform {
  const first = { ...codecOptions(columns), header: true };
  const rest = { ...first, header: false };
  let headerDone = false;
  return new Transform({
    writableObjectMode: true,
    readableHighWaterMark: 1 << 16,
    transform(rows: readonly (readonly Cell[])[], _encoding, callback) {
      try {
        // Lines gathered in an array and joined once: one allocation, no rope to flatten later.
        const lines: string[] = [];
        if (!headerDone) lines.push(stringify([], first).slice(0, -1));
        headerDone = true;
        let tricky: Cell[][] = [];
        for (const row of rows) {
          if (rowIsPlain(row, textual)) {
            if (tricky.length > 0) {
              lines.push(stringify(tricky, rest).slice(0, -1));
              tricky = [];
            }
            lines.push(row.join(','));
          } else tricky.push(row as Cell[]);
        }
        if (tricky.length > 0) lines.push(stringify(tricky, rest).slice(0, -1));
        lines.push('');
        const text = lines.join('\n');
        callback(null, text);
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback) {
      callback(null, headerDone ? undefined : stringify([], first));
    },
  });
}
