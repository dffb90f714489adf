// One load's connection to PostgreSQL: connected, in one transaction locked (one load at a time)
// with the foreign keys deferred to its end, and always knowing where it is, so any failure names
// the table, the step and the staged file. Every statement of the load goes through it.
import type pg from 'pg';
import { describePostgres, type PostgresConfig } from '../connect/config.ts';
import { watchLockWaits, type LockWatch } from '../connect/lock-waits.ts';
import { beginTransaction, connectPostgres, requireUtf8 } from '../connect/postgres.ts';
import { withEndReason } from '../errors/connection-ended.ts';
import { EtlError, LoadError, StagingError } from '../errors/etl-error.ts';
import type { PipelineModel } from '../model/types.ts';
import { COMMIT, compiled, DEFER_ALL, ident, ROLLBACK, runSql, savepoint, type CompiledQuery } from '../schema/sql.ts';
import { StatementCanceller } from './cancel.ts';
import { COMMIT_PLACE, toLoadError, type FailurePlace } from './errors.ts';
import { ensureSchema } from './ledger.ts';
import { acquireLoadLock, type LockPolicy } from './lock.ts';
import type { LoadOptions, LoadProgress } from './options.ts';

// Temp tables live in per-session buffers, 8 MB by default: a batch of a million rows would go back
// and forth to disk. For the transaction only (a session setting would stay, through a pooler, on a
// server connection the application uses next); settable only before the session touched a temp
// table, which a server connection a pooler hands over may have done: then the buffers stay as they are.
const TEMP_BUFFERS = compiled(`SET LOCAL temp_buffers = '256MB'`);
const INVALID_PARAMETER_VALUE = '22023';
// Sorts and hashes of the merge work on up to millions of rows, and indexes are built after bulk
// fills (load/indexes.ts): give them memory, for this transaction only.
const MERGE_MEMORY = compiled(`SET LOCAL work_mem = '128MB'`);
const INDEX_MEMORY = compiled(`SET LOCAL maintenance_work_mem = '256MB'`);

export class LoadSession {
  #place: FailurePlace = { table: '(setup)', step: 'preparing the load' };
  readonly #tempNames: Record<string, string> = {};
  #inTransaction = false;
  /** Says whom a statement waits for (connect/lock-waits.ts), from BEGIN to the end. */
  #lockWatch: LockWatch | null = null;
  /** Aborted when the session closes: work started ahead for its steps (read-ahead.ts) stops with it. */
  readonly #ended = new AbortController();

  private constructor(
    readonly client: pg.Client,
    readonly signal: AbortSignal | undefined,
    readonly emit: (e: LoadProgress) => void,
    private readonly secrets: readonly string[],
    private readonly canceller: StatementCanceller,
    private readonly lockPolicy: LockPolicy,
    /** The database, as messages name it (no password). */
    private readonly destination: string,
    /** Where a second connection asks whom the load waits for (connect/lock-waits.ts). */
    private readonly postgres: PostgresConfig,
  ) {}

  /** Connects; begin() takes the load lock. */
  static async open(options: LoadOptions): Promise<LoadSession> {
    const secrets = options.secrets ?? [];
    const client = await connectPostgres(options.postgres, secrets);
    const emit = (e: LoadProgress): void => options.onProgress?.(e);
    return new LoadSession(client, options.signal, emit, secrets, new StatementCanceller(options.postgres, options.signal), options.lock ?? 'wait', describePostgres(options.postgres), options.postgres);
  }

  /**
   * BEGIN, etl's settings for it, the load lock (waiting for another load, or failing at once); foreign
   * keys deferred to COMMIT (a row deleted from a parent is followed by its children later in load
   * order, within the same transaction); the model's tables created when missing.
   */
  async begin(model: PipelineModel): Promise<void> {
    await runSql(this.client, beginTransaction());
    this.#inTransaction = true;
    const server = await serverState(this.client);
    this.canceller.servedBy(server.pid);
    refuseReadOnly(server, this.destination);
    requireUtf8(server.encoding, this.destination);
    await this.attempt('etl_temp_buffers', (e) => (e as { code?: string }).code === INVALID_PARAMETER_VALUE, () => runSql(this.client, TEMP_BUFFERS), undefined);
    const onWait = (message: string | null): void => this.emit({ kind: 'waiting', message });
    this.#lockWatch = watchLockWaits(this.postgres, server.pid, onWait);
    await acquireLoadLock(this.client, this.lockPolicy, onWait, this.signal);
    this.at('(schema)', 'creating the tables of pipeline.yaml');
    await ensureSchema(this.client, model, { onWait, signal: this.signal });
    await runSql(this.client, DEFER_ALL);
    await runSql(this.client, MERGE_MEMORY);
    await runSql(this.client, INDEX_MEMORY);
  }

  /** COMMIT, or ROLLBACK for a dry run (or a run that changes nothing). */
  async end(commit: boolean): Promise<void> {
    this.at(COMMIT_PLACE, commit ? 'committing' : 'rolling back');
    this.signal?.throwIfAborted();
    await runSql(this.client, commit ? COMMIT : ROLLBACK);
    this.#inTransaction = false;
  }

  /** Where the load is now: named by any failure. */
  at(table: string, step: string, file?: string): void {
    this.#place = { table, step, ...(file ? { file } : {}) };
  }

  get place(): FailurePlace {
    return this.#place;
  }

  /** Temp table → what to call it in messages. */
  nameTemps(names: Readonly<Record<string, string>>): void {
    Object.assign(this.#tempNames, names);
  }

  run(q: CompiledQuery): Promise<pg.QueryResult> {
    return runSql(this.client, q);
  }

  /**
   * Runs `work` in a savepoint. When it fails in an expected way (`expected(error)`), the savepoint
   * undoes it and `undone` is returned; any other error goes on (and the transaction fails whole).
   */
  async attempt<T, U>(name: string, expected: (error: unknown) => boolean, work: () => Promise<T>, undone: U): Promise<T | U> {
    const point = savepoint(name);
    await this.run(point.set);
    let result: T;
    try {
      result = await work();
    } catch (error) {
      if (!expected(error)) throw error;
      await this.run(point.rollback);
      await this.run(point.release);
      return undone;
    }
    await this.run(point.release);
    return result;
  }

  /** rowCount of a statement. */
  async count(q: CompiledQuery): Promise<number> {
    return (await this.run(q)).rowCount ?? 0;
  }

  /** The tables a state table keyed by table (etl_pending, etl_gone) holds entries of. */
  async tablesListedIn(stateTable: string): Promise<Set<string>> {
    const r = await this.run(compiled(`SELECT DISTINCT table_name FROM ${ident(stateTable)}`));
    return new Set((r.rows as { table_name: string }[]).map((row) => row.table_name));
  }

  /** The error to report: what failed, where (the current place), secrets scrubbed. */
  failure(error: unknown): EtlError {
    if (this.signal?.aborted && !(error instanceof StagingError)) return interrupted(this.signal.reason);
    return toLoadError(withEndReason(this.client, error), { ...this.#place, tempNames: this.#tempNames }, this.secrets);
  }

  /** Aborted when the caller's signal is, or when the session closes. */
  get workSignal(): AbortSignal {
    return this.signal ? AbortSignal.any([this.signal, this.#ended.signal]) : this.#ended.signal;
  }

  /** Rolls back what is open, releases the lock, closes the connection. Never throws. */
  async close(): Promise<void> {
    if (this.#ended.signal.aborted) return;
    this.#ended.abort();
    if (this.#inTransaction) await runSql(this.client, ROLLBACK).catch(() => undefined);
    this.#inTransaction = false;
    this.canceller.stop();
    await this.#lockWatch?.stop();
    await this.client.end().catch(() => undefined);
  }
}

function interrupted(reason: unknown): EtlError {
  if (reason instanceof EtlError) return reason;
  return new LoadError('interrupted', 'load interrupted; PostgreSQL was rolled back and is as it was', { cause: reason });
}

const SERVER_STATE = compiled(
  `SELECT pg_backend_pid() AS pid, current_setting('transaction_read_only') = 'on' AS read_only, pg_is_in_recovery() AS standby, current_setting('server_encoding') AS encoding`,
);

interface ServerState {
  readonly pid: number;
  readonly readOnly: boolean;
  readonly standby: boolean;
  readonly encoding: string;
}

/** The server process the transaction runs on (through a pooler, not the one pg was given), whether it may write, and its encoding. */
async function serverState(client: pg.Client): Promise<ServerState> {
  const row = (await runSql<{ pid: number; read_only: boolean; standby: boolean; encoding: string }>(client, SERVER_STATE)).rows[0]!;
  return { pid: row.pid, readOnly: row.read_only, standby: row.standby, encoding: row.encoding };
}

/** A database that accepts no writes is said so before the load reads its run, not at its first temp table. */
function refuseReadOnly({ readOnly, standby }: ServerState, destination: string): void {
  if (!readOnly) return;
  if (standby) {
    throw new LoadError('database_read_only', `PostgreSQL at ${destination} accepts no writes: it is a standby (a read replica, in recovery)`, {
      hint: 'nothing was changed; point DATABASE_URL (or --database-url) at the primary',
    });
  }
  throw new LoadError('database_read_only', `PostgreSQL at ${destination} accepts no writes: its transactions are read-only by default (default_transaction_read_only)`, {
    hint: 'nothing was changed; turn it off for the user etl connects as (ALTER ROLE … SET default_transaction_read_only = off), or for the database',
  });
}
