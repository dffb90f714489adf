// CSV records vs lines. The temp table numbers rows by CSV record (header = 1), the only thing a
// COPY can number; PostgreSQL's own COPY errors and a text editor count physical lines. They differ
// only after a quoted value holding a newline (a message's text). The COPY tap notices whether that
// happened at all; only then, and only when there are rejects to write, the file is read once more
// to turn record numbers into line numbers, in step with the rejects (both in increasing order),
// so memory stays constant whatever the file size.
import { createReadStream } from 'node:fs';

const QUOTE = 0x22;
const NEWLINE = 0x0a;

/** Follows the quote state over a CSV byte stream; `multiline` turns true at the first newline inside quotes. */
export class QuotedNewlineDetector {
  #inQuote = false;
  multiline = false;

  scan(chunk: Buffer): void {
    if (this.multiline) return;
    let i = 0;
    for (;;) {
      const q = chunk.indexOf(QUOTE, i);
      if (this.#inQuote) {
        // Inside quotes: a newline before the closing quote means a multi-line record.
        const n = chunk.indexOf(NEWLINE, i);
        if (n !== -1 && (q === -1 || n < q)) {
          this.multiline = true;
          return;
        }
      }
      if (q === -1) return;
      this.#inQuote = !this.#inQuote;
      i = q + 1;
    }
  }
}

/** Physical line where each CSV record starts (record 1 = the header, on line 1). Ask in increasing order. */
export class RecordLines {
  readonly #chunks: AsyncIterator<Buffer>;
  #chunk: Buffer = Buffer.alloc(0);
  #pos = 0;
  #inQuote = false;
  #record = 1;
  #line = 1;

  constructor(file: string, chunkBytes = 1 << 20) {
    this.#chunks = (createReadStream(file, { highWaterMark: chunkBytes }) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async lineOf(record: number): Promise<number> {
    while (this.#record < record) {
      if (this.#pos >= this.#chunk.length) {
        const next = await this.#chunks.next();
        if (next.done) throw new Error(`the CSV has fewer than ${record} records`);
        this.#chunk = next.value;
        this.#pos = 0;
        continue;
      }
      const q = this.#chunk.indexOf(QUOTE, this.#pos);
      const n = this.#chunk.indexOf(NEWLINE, this.#pos);
      if (n === -1 && q === -1) {
        this.#pos = this.#chunk.length;
      } else if (n === -1 || (q !== -1 && q < n)) {
        this.#inQuote = !this.#inQuote;
        this.#pos = q + 1;
      } else {
        this.#line += 1;
        if (!this.#inQuote) this.#record += 1;
        this.#pos = n + 1;
      }
    }
    return this.#line;
  }

  async close(): Promise<void> {
    await this.#chunks.return?.();
  }
}
