// Turns what PostgreSQL refused into a LoadError that names the table, the CSV file and line, the
// column and the constraint, so a user can open users.csv at line 8123 and see the value.
import { DatabaseError } from 'pg';
import { pgErrorCode, PRIVILEGE_HINT } from '../errors/codes.ts';
import { EtlError, LoadError } from '../errors/etl-error.ts';
import { redactText } from '../errors/redact.ts';
import { isConnectionEnd, SERVER_ENDED } from '../errors/connection-ended.ts';

/** The place of a failure during COMMIT (or the ROLLBACK of a dry run). */
export const COMMIT_PLACE = '(commit)';

export interface FailurePlace {
  /** The real table being loaded. */
  readonly table: string;
  /** The staged file being read, relative to the run folder (COPY errors point into it). */
  readonly file?: string;
  /** What was being done ("copying", "merging"…), for the message. */
  readonly step: string;
  /** Temp table name → the real table, so messages never show our internal names. */
  readonly tempNames?: Readonly<Record<string, string>>;
}

// COPY's context line: `COPY etl_stage_3, line 8123, column name: "…"` (column absent for
// record-level errors such as a missing column).
const COPY_WHERE = /COPY [^,]+, line (\d+)(?:, column ([^:]+))?/;

/** Temp table names (`etl_keys_17`) → what they stand for (`messages keys`), each name whole: `etl_keys_1` is not the start of `etl_keys_17`. */
function realNames(text: string, names: Readonly<Record<string, string>>): string {
  const temps = Object.keys(names);
  if (temps.length === 0) return text;
  // Our names (shape.ts tempTables: etl_<role>_<n>) hold no character a pattern would read.
  const pattern = new RegExp(`(${temps.join('|')})(?!\\d)`, 'g');
  return text.replace(pattern, (temp) => names[temp] ?? temp);
}

export function toLoadError(error: unknown, place: FailurePlace, secrets: readonly string[] = []): EtlError {
  if (error instanceof EtlError) return error;
  if (error instanceof DatabaseError) {
    const where = COPY_WHERE.exec(error.where ?? '');
    const line = where ? Number(where[1]) : undefined;
    const column = error.column ?? (where?.[2] ? where[2].trim() : undefined);
    const plain = (text: string): string => redactText(realNames(text, place.tempNames ?? {}), secrets);
    const at = line !== undefined && place.file ? `${place.file} line ${line}${column ? `, column ${column}` : ''}: ` : column ? `column ${column}: ` : '';
    const detail = error.detail ? ` (${plain(error.detail)})` : '';
    return new LoadError(pgErrorCode(error.code), `${place.table}: ${place.step} failed: ${at}${plain(error.message)}${detail}`, {
      context: {
        table: place.table,
        ...(place.file ? { file: place.file } : {}),
        ...(line !== undefined ? { line } : {}),
        ...(column ? { sqlColumn: column } : {}),
        ...(error.constraint ? { constraint: error.constraint } : {}),
        ...(error.where ? { where: plain(error.where) } : {}),
      },
      pg: {
        sqlState: error.code,
        table: error.table === undefined ? undefined : plain(error.table),
        column: error.column,
        constraint: error.constraint,
        where: error.where === undefined ? undefined : plain(error.where),
      },
      hint: isConnectionEnd(error) ? connectionEndedHint(place) : hintFor(error.code, line !== undefined, error.table === undefined ? undefined : plain(error.table), error.column, place.table),
      cause: error,
    });
  }
  const message = redactText(error instanceof Error ? error.message : String(error), secrets);
  return new LoadError('load_failed', `${place.table}: ${place.step} failed: ${message}`, {
    context: { table: place.table, ...(place.file ? { file: place.file } : {}) },
    ...(isConnectionEnd(error) ? { hint: connectionEndedHint(place) } : {}),
    cause: error,
  });
}

/**
 * A value PostgreSQL refused (a data or constraint error, SQLSTATE class 22 or 23) from a run
 * transformed with another pipeline.yaml than the current one: pipeline.yaml was edited and `etl
 * schema` applied it (a narrowed type, a NOT NULL) after the run's transform, whose files follow the
 * old mapping. The hint for the value alone ("widen sql_type in pipeline.yaml") would undo the
 * edit; what fixes it is transforming the run again with the current pipeline.yaml.
 */
export function withStaleTransformHint(failure: EtlError, run: { readonly runId: string; readonly transformedWith: string | undefined; readonly current: string }): EtlError {
  const state = failure instanceof LoadError ? failure.pg?.sqlState : undefined;
  if (!run.transformedWith || run.transformedWith === run.current || !(state?.startsWith('22') || state?.startsWith('23'))) return failure;
  const stale =
    `run ${run.runId} was transformed with another pipeline.yaml than this one (sha256 ${run.transformedWith.slice(0, 12)}…), so its files follow the mapping of then: ` +
    `transform it again with this one (\`etl transform --run ${run.runId} --allow-pipeline-change\`) and load it, or run \`etl run\``;
  return new LoadError(failure.code, failure.message, {
    context: failure.context,
    pg: (failure as LoadError).pg ?? undefined,
    hint: failure.hint ? `${failure.hint}; ${stale}` : stale,
    cause: failure.cause,
  });
}

const ROLLED_BACK = 'nothing was changed in PostgreSQL (the load was rolled back)';

/**
 * Lost during COMMIT, the transaction may have committed: the next load of the run settles that from
 * the ledger (load/abandoned-loads.ts). Lost before, nothing was changed.
 */
function connectionEndedHint(place: FailurePlace): string {
  if (place.table === COMMIT_PLACE) return 'the connection ended while the load committed: it may have committed or not; run `etl load` of this run again, which settles that from the ledger';
  return `${ROLLED_BACK}; ${SERVER_ENDED}: run the load again once PostgreSQL is back`;
}

/** `table` and `column`: those PostgreSQL's error names; `loading`: the table the load was at. */
function hintFor(code: string | undefined, hasLine: boolean, table: string | undefined, column: string | undefined, loading: string): string {
  const base = ROLLED_BACK;
  // Load follows the references of pipeline.yaml's tables itself: a row it deleted is still referenced
  // from a table pipeline.yaml no longer has, whose foreign keys `etl schema` retires.
  if (code === '23503' && table) {
    return `${base}; "${table}" still references a row this load deletes: if "${table}" is no longer in pipeline.yaml, run \`etl schema\` (it drops the foreign keys etl created on it), then load again`;
  }
  if (code === '22001') return `${base}; the value is longer than the column allows: widen sql_type in pipeline.yaml or fix the source`;
  if (code === '23502') {
    // A column pipeline.yaml no longer has stays, NOT NULL, until `etl schema` drops its NOT NULL.
    const gone = table && column ? `; if "${table}"."${column}" is no longer in pipeline.yaml, run \`etl schema\` (it drops that NOT NULL; --allow drop-column:${table}.${column} drops the column), then load again` : '';
    return `${base}; a NOT NULL column has no value: make it nullable in pipeline.yaml or fix the source${gone}`;
  }
  // pipeline.yaml gained a column the database lacks: `etl schema` adds it (README, schema evolution).
  if (code === '42703') return `${base}; the table lacks a column pipeline.yaml names: run \`etl schema\` (it adds the columns pipeline.yaml gained), then load again`;
  // ON CONFLICT names the key pipeline.yaml merges on, which the table lacks: a primary key change `etl schema` refused.
  if (code === '42P10') return `${base}; "${loading}" has no primary key or unique constraint over the columns pipeline.yaml merges it on: run \`etl schema\` (a replaced primary key needs --allow primary-key:${loading}), then load again`;
  if (code === '23505') return `${base}; a unique constraint of the table does not hold for the staged rows`;
  // The user etl connects as may read but not write (a reporting role, a read replica's user).
  if (code === '42501') return `${base}; ${PRIVILEGE_HINT}`;

  if (code?.startsWith('22') && hasLine) return `${base}; the staged value cannot be read as the column's type`;
  return base;
}
