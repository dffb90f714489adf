// Ctrl-C during a long statement (a merge of a million rows): the signal alone cannot stop a query
// PostgreSQL is running, so a second connection asks the server to cancel it. The statement fails
// with "canceling statement due to user request", and the load rolls back as for any error.
//
// The backend cancelled is the one the load's transaction runs on, as the transaction itself reads
// it (servedBy): through a pooler in transaction pooling (PgBouncer) the pid a client is given at
// connection is the pooler's, not a server's, and cancelling it cancelled nothing (or, by chance,
// another session's statement). The second connection goes the same way as the first (TLS, a
// pooler, a tunnel); through a pooler it may run on another server connection, which is fine.
import pg from 'pg';
import { pgClientConfig } from '../connect/postgres.ts';
import type { PostgresConfig } from '../connect/config.ts';
import { compiled, runSql } from '../schema/sql.ts';

export class StatementCanceller {
  #backend: number | null = null;
  readonly #onAbort = (): void => this.#cancel();

  constructor(
    private readonly config: PostgresConfig,
    private readonly signal: AbortSignal | undefined,
  ) {
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** The server process running the load's transaction (`SELECT pg_backend_pid()` in it). */
  servedBy(pid: number): void {
    this.#backend = pid;
  }

  stop(): void {
    this.signal?.removeEventListener('abort', this.#onAbort);
  }

  #cancel(): void {
    const pid = this.#backend;
    // Before the transaction began nothing long runs: the load stops at its next statement.
    if (pid === null) return;
    const canceller = new pg.Client(pgClientConfig(this.config));
    canceller.on('error', () => undefined);
    void canceller
      .connect()
      .then(() => runSql(canceller, compiled('SELECT pg_cancel_backend($1)', [pid])))
      .catch(() => undefined)
      .finally(() => canceller.end().catch(() => undefined));
  }
}
