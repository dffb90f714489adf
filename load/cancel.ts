// Ctrl-C during a long statement (a merge of a million rows): the signal alone cannot stop a query
// PostgreSQL is running, so a second connection asks the server to cancel it. The statement fails
// with "canceling statement due to user request", and the load rolls back as for any error.
import pg from 'pg';
import { pgClientConfig } from '../connect/postgres.ts';
import type { PostgresConfig } from '../connect/config.ts';
import { compiled, runSql } from '../schema/sql.ts';

export function cancelQueriesOnAbort(client: pg.Client, config: PostgresConfig, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => undefined;
  const onAbort = (): void => {
    const pid = (client as unknown as { processID: number | null }).processID;
    if (!pid) return;
    const canceller = new pg.Client(pgClientConfig(config));
    canceller.on('error', () => undefined);
    void canceller
      .connect()
      .then(() => runSql(canceller, compiled('SELECT pg_cancel_backend($1)', [pid])))
      .catch(() => undefined)
      .finally(() => canceller.end().catch(() => undefined));
  };
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
