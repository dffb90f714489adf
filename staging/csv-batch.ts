// CSV rows gathered into text of about 64 KiB before one stream write: transform's staged files
// (transform/staged-output.ts) and diff's expected rows (inspect/shared-scan.ts, a COPY or a file).
// A stream or socket write costs far more than making a line (a write per row was a third of diff's
// CPU), and joining the lines once makes one flat string, with no rope for the stream to flatten.
// The lines are staging/csv-lines.ts's, so the bytes are exactly csvWriter's (staging/csv.ts).
import type { Cell } from './csv.ts';
import { csvHeader, csvLine } from './csv-lines.ts';

/** Characters of CSV text gathered before the batch reports itself full. */
export const CSV_BATCH_CHARS = 1 << 16;

export class CsvBatch {
  /** Lines without their `\n` (the header's included until the first take), joined by one at the take. */
  private lines: string[];
  private chars = 0;

  /** `textual`: which columns may hold cells that need quoting (see csvLine); null: all. */
  constructor(
    columns: readonly string[],
    private readonly textual: readonly boolean[] | null = null,
  ) {
    this.lines = [csvHeader(columns).slice(0, -1)];
  }

  /** Adds a row; true when the batch is full (take it). */
  add(row: readonly Cell[]): boolean {
    return this.addLine(csvLine(row, this.textual));
  }

  /** Adds a row already made into its CSV line (csvLine, no `\n`); true when the batch is full. */
  addLine(line: string): boolean {
    this.lines.push(line);
    this.chars += line.length + 1;
    return this.chars >= CSV_BATCH_CHARS;
  }

  /** The text gathered since the last take, every line ended by `\n` (the header first, once); '' when nothing was. */
  take(): string {
    if (this.lines.length === 0) return '';
    this.lines.push('');
    const text = this.lines.join('\n');
    this.lines = [];
    this.chars = 0;
    return text;
  }
}
