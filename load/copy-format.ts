// Which format a large COPY of a staged file uses: PostgreSQL's binary format when every column has
// an encoder (load/binary-copy.ts) and the table's column really has the type the encoder writes,
// else the CSV itself. A binary COPY that fails in any way but an interruption or a staging fault is
// undone by its savepoint and the CSV is COPYed instead: PostgreSQL's own input functions then decide
// and report exactly as they always did, so the format is never a reason for a different outcome.
import { StagingError } from '../errors/etl-error.ts';
import type { SqlType } from '../model/types.ts';
import { compiled, type SqlIdent } from '../schema/sql.ts';
import { COPY_CSV_OPTIONS } from '../staging/csv.ts';
import { BINARY_COPY_OPTIONS, binaryColumns, type BinaryColumn } from './binary-copy.ts';
import type { LoadSession } from './session.ts';

/** How one COPY attempt reads the file: `binary` null means the CSV as it is. */
export interface CopyFormat {
  readonly binary: readonly BinaryColumn[] | null;
}

/** The type OIDs each encoder's bytes are the binary form of (text: text and varchar). */
const RECEIVING_TYPES: Record<BinaryColumn, readonly number[]> = {
  text: [25, 1043],
  smallint: [21],
  integer: [23],
  bigint: [20],
  boolean: [16],
  timestamp: [1114],
  date: [1082],
  jsonb: [3802],
};

const columnTypesSql = (table: SqlIdent) =>
  compiled(`SELECT a.attname AS name, a.atttypid::int AS oid FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`, [table]);

/**
 * The encoders for COPYing `columns` (in file order) into `table`, or null when a column has none or
 * the table's column is of another type than pipeline.yaml says (altered by hand: a TIMESTAMPTZ reads
 * the same eight bytes as another instant, so only the CSV keeps today's meaning).
 */
export async function binaryEncoders(session: LoadSession, table: SqlIdent, columns: readonly { readonly name: string; readonly sqlType: SqlType }[]): Promise<BinaryColumn[] | null> {
  const encoders = binaryColumns(columns.map((c) => c.sqlType));
  if (encoders === null) return null;
  const rows = (await session.run(columnTypesSql(table))).rows as { name: string; oid: number }[];
  const live = new Map(rows.map((r) => [r.name, r.oid]));
  return columns.every((c, i) => RECEIVING_TYPES[encoders[i]!].includes(live.get(c.name) ?? 0)) ? encoders : null;
}

const REFUSED = Symbol('binary COPY refused');

/**
 * Runs `work` (which empties its table in its own subtransaction and COPYs into it) in a savepoint:
 * first in binary when `binary` is given, then, if that failed for another reason than `undone`, an
 * interruption or a staging fault, with the CSV. As session.attempt: null when `undone` says the
 * savepoint undid it.
 */
export async function attemptCopy<T>(
  session: LoadSession,
  name: string,
  undone: (error: unknown) => boolean,
  binary: readonly BinaryColumn[] | null,
  work: (format: CopyFormat) => Promise<T>,
): Promise<T | null> {
  if (binary !== null) {
    let refusal: unknown;
    const retry = (error: unknown): boolean => {
      refusal = error;
      return !session.signal?.aborted && !(error instanceof StagingError);
    };
    const done = await session.attempt(`${name}_binary`, retry, () => work({ binary }), REFUSED);
    if (done !== REFUSED) return done;
    if (undone(refusal)) return null;
  }
  return session.attempt(name, undone, () => work({ binary: null }), null);
}

/**
 * The CSV's COPY options for a table whose file the current subtransaction created (CLUSTER,
 * TRUNCATE): the rows are written frozen and their pages marked all-visible, so every later read of
 * them in this load (reference checks, index builds, sorts) skips the visibility test of each row
 * this transaction wrote. Other sessions' older snapshots see the rows once committed: no more
 * MVCC-unsafe than the CLUSTER or TRUNCATE before it, which already shows them an empty table.
 */
const FROZEN_COPY_OPTIONS = COPY_CSV_OPTIONS.replace(/\)$/, ', FREEZE true)');

/** The frozen COPY's options in `format`. */
export const frozenCopyOptions = (format: CopyFormat): string => (format.binary === null ? FROZEN_COPY_OPTIONS : BINARY_COPY_OPTIONS.replace(/\)$/, ', FREEZE true)'));
