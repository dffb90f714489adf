// load/<table>.rejects.ndjson: every reference load refused or set NULL, one JSON object a line.
// The rows are read back from the temp rejects table through a cursor, a batch at a time, so the
// file can be as large as it needs without the list ever being held in memory. The file is written
// as `.partial` inside the transaction and renamed only once the transaction ended as planned
// (commit, or the rollback of a dry run): it describes what the load did, never an aborted attempt.
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { compiled, ident, runSql, type CompiledQuery } from '../schema/sql.ts';
import { AtomicFileSink, type FileFigures } from '../staging/atomic-file.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { RecordLines } from './csv-lines.ts';
import type { PlannedCheck } from './references.ts';
import type { TableShape } from './shape.ts';
import { makeFolders } from '../staging/make-folders.ts';

export interface RejectLine {
  readonly table: string;
  /** The row's key (its merge key: `{"id": …}`, `{"user_id": …, "day": …}`), to find it in the staged file and in MongoDB. */
  readonly key: Readonly<Record<string, unknown>> | null;
  /** Staged file the row came from, relative to the run folder. */
  readonly file: string;
  /**
   * Line of the staged CSV where the row starts (header = line 1), as PostgreSQL's COPY errors count;
   * null for a dedupe row recomputed from contributions staged by earlier runs.
   */
  readonly line: number | null;
  readonly column: string;
  readonly value: string | null;
  /** The referenced table and column, e.g. `users(id)`. */
  readonly references: string;
  /**
   * missing_reference; duplicate_key: another source document converts to the same key;
   * duplicate_value: another row would hold the row's value of a unique constraint (`column` names its columns).
   */
  readonly reason: 'missing_reference' | 'duplicate_key' | 'duplicate_value';
  /** reject: the row was not loaded; set_null: it was loaded with this column NULL. */
  readonly action: 'reject' | 'set_null';
  /** duplicate_key: every document claiming the key (24 hex for an ObjectId, else its Extended JSON); duplicate_value: every holder of the value. */
  readonly documents?: readonly string[];
}

/** A row of the rejects temp table. */
interface RejectRow {
  line: string;
  column_name: string;
  value: string | null;
  action: string;
  reason: string;
  documents: string[] | null;
  row_key: Record<string, unknown> | null;
}

const CURSOR = ident('etl_rejects_cursor');
const FETCH_ROWS = 2000;
const FETCH = compiled(`FETCH ${FETCH_ROWS} FROM ${CURSOR}`);
const CLOSE = compiled(`CLOSE ${CURSOR}`);
const declareCursor = (select: CompiledQuery): CompiledQuery => compiled(`DECLARE ${CURSOR} NO SCROLL CURSOR FOR ${select.sql}`, select.parameters);

export async function writeRejectsFile(
  client: pg.Client,
  select: CompiledQuery,
  path: string,
  describe: (row: RejectRow) => RejectLine | Promise<RejectLine>,
  signal?: AbortSignal,
): Promise<{ sink: AtomicFileSink; figures: FileFigures }> {
  // A run copied without its (empty) load/ folder still takes its rejects files.
  await makeFolders(dirname(path));
  const sink = new AtomicFileSink(path);
  async function* lines(): AsyncGenerator<string> {
    await runSql(client, declareCursor(select));
    let batch = await runSql(client, FETCH);
    for (;;) {
      // The next batch is read (or, after a short batch, the last, the cursor closed) while this one
      // is described and written: PostgreSQL does not wait for the client.
      const last = batch.rows.length < FETCH_ROWS;
      const next = runSql(client, last ? CLOSE : FETCH);
      next.catch(() => undefined);
      let text = '';
      for (const row of batch.rows) text += `${JSON.stringify(await describe(row))}\n`;
      if (text) yield text;
      if (last) {
        await next;
        break;
      }
      batch = await next;
    }
  }
  try {
    await pipeline(Readable.from(lines()), sink, ...(signal ? [{ signal }] : []));
  } catch (error) {
    await sink.discard();
    throw error;
  }
  return { sink, figures: sink.figures() };
}

/** Read back (through a cursor, in line order) to write the load rejects file. */
const selectRejectsSql = (s: TableShape): CompiledQuery => compiled(`SELECT line, column_name, value, action, reason, documents, row_key FROM ${s.temps.rejects} ORDER BY line, column_name`);

/**
 * Writes load/<table>.rejects.ndjson from the rejects temp table (as .partial). `file` is the staged
 * file the lines count in; `multiline`: a quoted value of it holds a newline, so CSV records and
 * lines differ and the file is read once more to translate.
 */
export async function writeLoadRejects(
  client: pg.Client,
  paths: RunPaths,
  shape: TableShape,
  checks: readonly PlannedCheck[],
  file: string,
  multiline: boolean,
  signal?: AbortSignal,
): Promise<{ sink: AtomicFileSink; figures: FileFigures }> {
  const referencesOf = new Map(checks.map((c) => [c.column.name, c.references]));
  const relative = paths.relative(file);
  const lines = multiline ? new RecordLines(file) : null;
  const lineOf = async (record: number): Promise<number | null> => (record <= 0 ? null : lines ? lines.lineOf(record) : record);
  try {
    return await writeRejectsFile(
      client,
      selectRejectsSql(shape),
      paths.loadRejects(shape.table.name),
      async (row): Promise<RejectLine> => ({
        table: shape.table.name,
        key: row.row_key,
        file: relative,
        line: await lineOf(Number(row.line)),
        column: row.column_name,
        value: row.value,
        references: row.reason === 'missing_reference' ? (referencesOf.get(row.column_name) ?? '') : '',
        reason: row.reason === 'duplicate_key' || row.reason === 'duplicate_value' ? row.reason : 'missing_reference',
        action: row.action === 'set_null' ? 'set_null' : 'reject',
        ...(row.documents ? { documents: row.documents } : {}),
      }),
      signal,
    );
  } finally {
    await lines?.close();
  }
}
