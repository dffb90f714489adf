// PostgreSQL as the oracle of load/binary-copy.ts: the same staged CSV bytes COPYed as CSV into one
// table and through csvToBinaryCopy as binary into its twin, then the two tables compared row by
// row. Also the encoder alone (no server), fed in any chunking.
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { BINARY_COPY_OPTIONS, csvToBinaryCopy, NotEncodable, type BinaryColumn } from '../../load/binary-copy.ts';
import { COPY_CSV_OPTIONS } from '../../staging/csv.ts';
import { ident, identList } from '../../schema/sql.ts';

/** A column of a twin table: its name, DDL type and encoder. */
export interface TwinColumn {
  readonly name: string;
  readonly ddl: string;
  readonly kind: BinaryColumn;
}

/** The input cut in pieces of `size` bytes (the last one shorter). */
export function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** The encoder's whole output for the input given as these chunks (rejects with its error). */
export async function encode(columns: readonly BinaryColumn[], chunks: readonly Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(Buffer.from(chunk));
      callback();
    },
  });
  // An array, not a Buffer: Readable.from(buffer) would yield its bytes one by one as numbers.
  await pipeline(Readable.from([...chunks], { objectMode: false }), csvToBinaryCopy(columns), sink);
  return Buffer.concat(out);
}

/** The encoder's error for this input, or null when it encoded it. */
export async function encodeError(columns: readonly BinaryColumn[], chunks: readonly Buffer[]): Promise<unknown> {
  try {
    await encode(columns, chunks);
    return null;
  } catch (err) {
    return err;
  }
}

/**
 * The column numbering a twin's rows in file order. Not ctid: COPY into a table whose file predates
 * its transaction (these twins) puts later small rows in earlier pages' free space, and the CSV and
 * binary COPYs flush their insert buffers at different points, so their ctid orders differ from the
 * file's and from each other's (PostgreSQL 17.10, 1000 rows with a few 100 kB texts: 186 rows out of
 * place in the CSV COPY's table, none in the binary one's). load COPYs into a file created in the
 * same transaction (direct.ts), which both formats fill in order. The identity is drawn for each
 * row as COPY reads it.
 */
export const ROW_NUMBER = '#';

/** CREATE TABLE of a twin's columns, after its ROW_NUMBER identity. */
export async function createTable(client: pg.Client, table: string, columns: readonly TwinColumn[]): Promise<void> {
  const defs = columns.map((c) => `${ident(c.name)} ${c.ddl}`).join(', ');
  await client.query(`CREATE TABLE ${ident(table)} (${ident(ROW_NUMBER)} bigint GENERATED ALWAYS AS IDENTITY, ${defs})`);
}

const copyInto = (table: string, columns: readonly TwinColumn[], options: string) =>
  `COPY ${ident(table)} (${identList(columns.map((c) => c.name))}) FROM STDIN WITH ${options}`;

/** COPY the bytes in as CSV (the load's dialect); the rows COPY reported. */
export async function copyCsv(client: pg.Client, table: string, columns: readonly TwinColumn[], bytes: Buffer | Readable): Promise<number> {
  const copy = client.query(copyFrom(copyInto(table, columns, COPY_CSV_OPTIONS)));
  await pipeline(bytes instanceof Readable ? bytes : Readable.from([bytes]), copy);
  return copy.rowCount;
}

/** COPY the same bytes in through the encoder, as load would (`chunk` bytes at a time when given). */
export async function copyBinary(client: pg.Client, table: string, columns: readonly TwinColumn[], bytes: Buffer | Readable, chunk?: number): Promise<number> {
  const copy = client.query(copyFrom(copyInto(table, columns, BINARY_COPY_OPTIONS)));
  const source = bytes instanceof Readable ? bytes : Readable.from(chunk === undefined ? [bytes] : chunksOf(bytes, chunk));
  await pipeline(source, csvToBinaryCopy(columns.map((c) => c.kind)), copy);
  return copy.rowCount;
}

/** What a COPY did: its row count, or the error it ended with. */
export type Outcome = { readonly rows: number } | { readonly error: unknown };

export async function outcomeOf(run: () => Promise<number>): Promise<Outcome> {
  try {
    return { rows: await run() };
  } catch (error) {
    return { error };
  }
}

export function errorText(outcome: Outcome): string {
  if (!('error' in outcome)) return `${outcome.rows} rows`;
  const e = outcome.error as Error;
  return `${e.name}: ${e.message}`;
}

/** Each row as the text of its columns' row value, in file order. */
export async function rowTexts(client: pg.Client, table: string, columns: readonly TwinColumn[]): Promise<string[]> {
  const r = await client.query<{ r: string }>(`SELECT ROW(${identList(columns.map((c) => c.name))})::text AS r FROM ${ident(table)} ORDER BY ${ident(ROW_NUMBER)}`);
  return r.rows.map((row) => row.r);
}

/**
 * The two tables hold the same rows in the same (file) order: equal row texts one by one, and
 * every column IS NOT DISTINCT FROM its twin (NULL against NULL, not NULL against '').
 */
export async function assertSameRows(client: pg.Client, a: string, b: string, columns: readonly TwinColumn[], label: string): Promise<number> {
  const [left, right] = await Promise.all([rowTexts(client, a, columns), rowTexts(client, b, columns)]);
  assert.equal(right.length, left.length, `${label}: row count`);
  for (let i = 0; i < left.length; i += 1) assert.equal(right[i], left[i], `${label}: row ${i + 1} differs`);
  const n = ident(ROW_NUMBER);
  const same = columns.map((c) => `x.${ident(c.name)} IS NOT DISTINCT FROM y.${ident(c.name)}`).join(' AND ');
  const differing = await client.query<{ n: string }>(
    `SELECT coalesce(x.${n}, y.${n}) AS n FROM ${ident(a)} AS x FULL JOIN ${ident(b)} AS y ON x.${n} = y.${n}
     WHERE x.${n} IS NULL OR y.${n} IS NULL OR NOT (${same}) ORDER BY 1 LIMIT 5`,
  );
  assert.deepEqual(differing.rows.map((r) => Number(r.n)), [], `${label}: rows whose columns are DISTINCT FROM their twin's`);
  return left.length;
}

/**
 * The table's ctid order is its file order (ROW_NUMBER order): what load's reject numbering relies
 * on for a COPY into a file created in its transaction (direct.ts numberRejectsByCtidSql).
 */
export async function assertFileOrderByCtid(client: pg.Client, table: string, label: string): Promise<void> {
  const r = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT ${ident(ROW_NUMBER)} AS k, row_number() OVER (ORDER BY ctid) AS place FROM ${ident(table)}) AS o WHERE k <> place`,
  );
  assert.equal(r.rows[0]!.n, 0, `${label}: rows of ${table} whose ctid order is not their file order`);
}

let twins = 0;

/** A fresh pair of twin tables: `<base>_csv` and `<base>_bin`. */
export async function twinTables(client: pg.Client, columns: readonly TwinColumn[]): Promise<{ csv: string; bin: string }> {
  twins += 1;
  const base = `twin_${twins}`;
  const csv = `${base}_csv`;
  const bin = `${base}_bin`;
  await createTable(client, csv, columns);
  await createTable(client, bin, columns);
  return { csv, bin };
}

/**
 * The property every input must hold, canonical or not: if the binary COPY succeeds, the CSV COPY
 * of the same bytes succeeds too and gives the same rows; if the server refuses the binary stream,
 * it refuses the CSV too. Returns both outcomes for further checks.
 */
export async function neverDiffers(client: pg.Client, columns: readonly TwinColumn[], bytes: Buffer, label: string): Promise<{ csv: Outcome; bin: Outcome }> {
  const { csv, bin } = await twinTables(client, columns);
  const csvOutcome = await outcomeOf(() => copyCsv(client, csv, columns, bytes));
  const binOutcome = await outcomeOf(() => copyBinary(client, bin, columns, bytes));
  if ('rows' in binOutcome) {
    assert.ok('rows' in csvOutcome, `${label}: the binary COPY loaded ${binOutcome.rows} rows where the CSV COPY failed (${errorText(csvOutcome)})`);
    assert.equal(binOutcome.rows, csvOutcome.rows, `${label}: rows COPY reported`);
    await assertSameRows(client, csv, bin, columns, label);
  } else {
    // A refused or failed binary COPY leaves nothing behind (CopyFail): the caller then COPYs the CSV.
    assert.deepEqual(await rowTexts(client, bin, columns), [], `${label}: rows left by a failed binary COPY`);
    // Only NotEncodable sends the load to the CSV: a server error where the CSV loads would fail the load.
    if (!(binOutcome.error instanceof NotEncodable)) {
      assert.ok('error' in csvOutcome, `${label}: the binary COPY failed (${errorText(binOutcome)}) where the CSV COPY loaded ${errorText(csvOutcome)}`);
    }
  }
  return { csv: csvOutcome, bin: binOutcome };
}

/** The outcome is the encoder's NotEncodable (its class, not just its name). */
export function assertNotEncodable(outcome: Outcome | unknown, label: string): void {
  const error = outcome !== null && typeof outcome === 'object' && 'error' in outcome ? (outcome as { error: unknown }).error : outcome;
  assert.ok(error instanceof NotEncodable, `${label}: expected NotEncodable, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
}
