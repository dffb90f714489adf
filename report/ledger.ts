// What the ledger in PostgreSQL (etl_runs, written by load in its transaction) says about past
// runs: one row per run and table with load's figures. Read-only; a database where `etl schema`
// never ran has no ledger, which is an answer (no runs), not an error.
import type pg from 'pg';
import { connectPostgres, inTransaction } from '../connect/postgres.ts';
import type { PostgresConfig } from '../connect/config.ts';
import { StateReads } from '../schema/state-reads.ts';
import { runPendingCount } from '../audit/runs.ts';

export interface LedgerRun {
  readonly run_id: string;
  /** When its first table was loaded. */
  readonly loaded_at: string;
  readonly tables: number;
  /** Rows of the tables the run staged (a dedupe table's rows, not its contributions). */
  readonly rows: number;
  readonly inserted: number;
  readonly updated: number;
  readonly deleted: number;
  /** Rows load rejected (its tables' `rejected`). */
  readonly rejected: number;
  /** What the run's extract and transform refused (`run_rejected_before_load`); null in a ledger older than that figure. */
  readonly rejected_before_load: number | null;
  /** Rows kept pending for a later run, when load records them; null otherwise. */
  readonly pending: number | null;
  /** Tables the run staged, when load records them (`run_tables`); null otherwise. */
  readonly staged_tables: number | null;
}

export interface Ledger {
  /** Where it was read (no credentials), or null when it could not be. */
  readonly destination: string | null;
  readonly runs: readonly LedgerRun[];
  /** Why it was not read (unreachable server…), or null. */
  readonly problem: string | null;
}

const CONNECT_TIMEOUT_MS = 5_000;

/** The newest runs of the ledger, newest first. */
async function readLedgerRuns(client: pg.ClientBase, limit = 1000): Promise<LedgerRun[]> {
  const rows = await (await StateReads.open(client)).ledgerRows(limit);
  return rows.map((row) => {
    const sum = (k: string) => row.summaries.reduce((a, s) => a + (typeof s[k] === 'number' ? (s[k] as number) : 0), 0);
    return {
      run_id: row.run_id,
      loaded_at: row.loaded_at.toISOString(),
      tables: row.tables,
      rows: row.summaries.reduce((a, s) => a + summaryRows(s), 0),
      inserted: sum('inserted'),
      updated: sum('updated'),
      deleted: sum('deleted'),
      rejected: sum('rejected'),
      rejected_before_load: runRejectedBeforeLoad(row.summaries),
      pending: runPending(row.summaries),
      staged_tables: runTables(row.summaries),
    };
  });
}

/** A table's rows in its summary; one recorded before `rows` has only `staged` (a dedupe table's contributions). */
function summaryRows(s: Record<string, unknown>): number {
  const rows = typeof s.rows === 'number' ? s.rows : s.staged;
  return typeof rows === 'number' ? rows : 0;
}

/**
 * etl_pending after the run's last load, every table (`run_pending`, in each table's summary, the
 * summaries in load order); a ledger older than that figure has its tables' figures only.
 */
function runPending(summaries: readonly Record<string, unknown>[]): number | null {
  return runPendingCount(lastRecorded(summaries, 'run_pending'), summaries.map((s) => s.pending));
}

/** The tables the run staged, as its last load recorded them (`run_tables`); null in a ledger older than that figure. */
function runTables(summaries: readonly Record<string, unknown>[]): number | null {
  const tables = lastRecorded(summaries, 'run_tables');
  return typeof tables === 'number' ? tables : null;
}

/** What the run's extract and transform refused, as its last load recorded it; null in a ledger older than that figure. */
function runRejectedBeforeLoad(summaries: readonly Record<string, unknown>[]): number | null {
  const rejected = lastRecorded(summaries, 'run_rejected_before_load');
  return typeof rejected === 'number' ? rejected : null;
}

/** A run-level figure as the run's last load recorded it in its tables' summaries (load order); undefined when none did. */
function lastRecorded(summaries: readonly Record<string, unknown>[], key: string): unknown {
  return summaries.map((s) => s[key]).filter((v) => v !== undefined && v !== null).at(-1);
}

/** Connects (giving up after a few seconds), reads the ledger, closes; never throws. */
export async function readLedger(postgres: PostgresConfig, describe: string, secrets: readonly string[]): Promise<Ledger> {
  let client: pg.Client | null = null;
  try {
    let late = false;
    const connecting = connectPostgres(postgres, secrets);
    // A connection that succeeds after we gave up is closed at once.
    connecting.then((c) => (late ? c.end() : undefined), () => undefined);
    const timer = new Promise<never>((_, reject) =>
      setTimeout(() => {
        late = true;
        reject(new Error(`no answer from PostgreSQL at ${describe} within ${CONNECT_TIMEOUT_MS / 1000} s`));
      }, CONNECT_TIMEOUT_MS).unref(),
    );
    client = await Promise.race([connecting, timer]);
    const ready = client;
    return { destination: describe, runs: await inTransaction(ready, () => readLedgerRuns(ready)), problem: null };
  } catch (error) {
    return { destination: null, runs: [], problem: error instanceof Error ? error.message : String(error) };
  } finally {
    await (client as pg.Client | null)?.end().catch(() => undefined);
  }
}
