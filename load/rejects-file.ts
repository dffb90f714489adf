// load/<table>.rejects.ndjson: every reference load refused or set NULL, one JSON object a line.
// The rows are read back from the temp rejects table through a cursor, a batch at a time, so the
// file can be as large as it needs without the list ever being held in memory. The file is written
// as `.partial` inside the transaction and renamed only once the transaction ended as planned
// (commit, or the rollback of a dry run): it describes what the load did, never an aborted attempt.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { AtomicFileSink, type FileFigures } from '../staging/atomic-file.ts';

export interface RejectLine {
  readonly table: string;
  /** Staged file the row came from, relative to the run folder. */
  readonly file: string;
  /** Line of the staged CSV where the row starts (header = line 1), as PostgreSQL's COPY errors count. */
  readonly line: number;
  readonly column: string;
  readonly value: string | null;
  /** The referenced table and column, e.g. `users(id)`. */
  readonly references: string;
  readonly reason: 'missing_reference';
  /** reject: the row was not loaded; set_null: it was loaded with this column NULL. */
  readonly action: 'reject' | 'set_null';
}

const CURSOR = 'etl_rejects_cursor';
const FETCH = 2000;

export async function writeRejectsFile(
  client: pg.Client,
  selectSql: string,
  path: string,
  describe: (row: { line: string; column_name: string; value: string | null; action: string }) => RejectLine | Promise<RejectLine>,
  signal?: AbortSignal,
): Promise<{ sink: AtomicFileSink; figures: FileFigures }> {
  const sink = new AtomicFileSink(path);
  async function* lines(): AsyncGenerator<string> {
    await client.query(`DECLARE ${CURSOR} NO SCROLL CURSOR FOR ${selectSql}`);
    for (;;) {
      const batch = await client.query(`FETCH ${FETCH} FROM ${CURSOR}`);
      if (batch.rows.length === 0) break;
      let text = '';
      for (const row of batch.rows) text += `${JSON.stringify(await describe(row))}\n`;
      yield text;
    }
    await client.query(`CLOSE ${CURSOR}`);
  }
  try {
    await pipeline(Readable.from(lines()), sink, ...(signal ? [{ signal }] : []));
  } catch (error) {
    await sink.discard();
    throw error;
  }
  return { sink, figures: sink.figures() };
}
