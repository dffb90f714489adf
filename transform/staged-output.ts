// The files a table writes while its collection streams past: rows become CSV lines (staging/csv-batch.ts,
// the codec of staging/csv.ts, about 64 KiB a write) into an AtomicFileSink, so each file is hashed as it is written and appears whole
// or not at all. Writes are synchronous; the caller awaits drain() when a write reports a full
// buffer, which is how backpressure reaches the NDJSON reader.
import { once } from 'node:events';
import { PassThrough, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AtomicFileSink } from '../staging/atomic-file.ts';
import type { Cell } from '../staging/csv.ts';
import { CsvBatch } from '../staging/csv-batch.ts';
import type { FileRecord } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';

class StagedOutput<T> {
  private readonly head: Duplex;
  private readonly sink: AtomicFileSink;
  private readonly done: Promise<void>;
  private blocked = false;
  /** Records written (CSV data rows, NDJSON lines). */
  records = 0;

  constructor(
    private readonly paths: RunPaths,
    file: string,
    head: Duplex,
    private readonly signal: AbortSignal,
    onFailure: (error: unknown) => void,
  ) {
    this.head = head;
    this.sink = new AtomicFileSink(file);
    this.done = pipeline(head, this.sink, { signal });
    // Seen at once by the stage (which aborts the other files), and awaited again in commit().
    this.done.catch(onFailure);
  }

  write(record: T): void {
    this.records += 1;
    this.push(record);
  }

  /** Hands a chunk to the stream (subclasses may gather records first). */
  protected push(chunk: unknown): void {
    if (!this.head.write(chunk)) this.blocked = true;
  }

  /** Called before the stream ends: subclasses hand over what they gathered. */
  protected flushPending(): void {}

  get needsDrain(): boolean {
    return this.blocked;
  }

  async drain(): Promise<void> {
    if (!this.blocked) return;
    // The signal is aborted when any output of the stage fails, so this never waits on a dead stream.
    await once(this.head, 'drain', { signal: this.signal });
    this.blocked = false;
  }

  /** Ends the stream, waits until every byte is on disk, renames the file into place. */
  async commit(): Promise<FileRecord> {
    this.flushPending();
    this.head.end();
    await this.done;
    const figures = await this.sink.commit();
    return { file: this.paths.relative(this.sink.path), bytes: figures.bytes, sha256: figures.sha256, records: this.records };
  }

  async discard(): Promise<void> {
    this.head.destroy();
    await this.done.catch(() => undefined);
    await this.sink.discard();
  }
}

export class CsvOutput extends StagedOutput<readonly Cell[]> {
  /** The rows not yet handed to the stream (the header first). */
  private readonly batch: CsvBatch;

  /** `textual`: which columns may hold cells that need quoting (see csvLine); null: all. */
  constructor(paths: RunPaths, file: string, columns: readonly string[], signal: AbortSignal, onFailure: (error: unknown) => void, textual: readonly boolean[] | null = null) {
    super(paths, file, new PassThrough({ highWaterMark: 1 << 16 }), signal, onFailure);
    this.batch = new CsvBatch(columns, textual);
  }

  override write(row: readonly Cell[]): void {
    this.records += 1;
    if (this.batch.add(row)) this.flushPending();
  }

  /** A row already made into its CSV line (csvLine, no `\n`). */
  writeLine(line: string): void {
    this.records += 1;
    if (this.batch.addLine(line)) this.flushPending();
  }

  protected override flushPending(): void {
    const text = this.batch.take();
    if (text) this.push(text);
  }
}

export class NdjsonOutput extends StagedOutput<string> {
  constructor(paths: RunPaths, file: string, signal: AbortSignal, onFailure: (error: unknown) => void) {
    super(paths, file, new PassThrough({ highWaterMark: 1 << 16 }), signal, onFailure);
  }
}
