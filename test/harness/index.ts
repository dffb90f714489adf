// Real servers for tests. Typical test file:
//
//   import { test } from 'node:test';
//   import { useServers } from '../harness/index.ts';
//   const servers = useServers();                        // before: start both; after: stop both
//   test('loads the users', async (t) => {
//     const pgUrl = await servers.postgres.createDatabase(t.name);   // fresh database for this test
//     const mongo = await servers.mongo.newDatabase(t.name);         // { name, url }
//     ...
//   });
//
// DATABASE_URL / MONGODB_URL point the tests at existing servers instead (nothing is started).
// KEEP_TEST_DATA=1 keeps the data directories (and printed paths) of servers whose tests failed.
// useServers({ postgres: { binaries: 'system' } }) (or TEST_PG_BINARIES=system) runs Debian's
// PostgreSQL instead of the embedded 17, for tests whose pg_dump/pg_restore must match the server.
import { after, afterEach, before } from 'node:test';
import { startFerretDb, type MongoServer } from '../../dev/servers/ferretdb.ts';
import { startPostgres, type PgServer, type StartPostgresOptions } from '../../dev/servers/postgres.ts';

export { databaseNameFor } from '../../dev/servers/names.ts';
export { FERRETDB_VERSION, ferretDbBinary, startFerretDb, withDatabase as mongoUrlWithDatabase, type MongoServer } from '../../dev/servers/ferretdb.ts';
export { startPostgres, type PgBinaries, type PgServer, type StartPostgresOptions, type StopOptions } from '../../dev/servers/postgres.ts';

export interface ServerChoice {
  /** Start PostgreSQL (default true); options pick the binaries, e.g. { binaries: 'system' }. */
  readonly postgres?: boolean | StartPostgresOptions;
  /** Start FerretDB (default true). */
  readonly mongo?: boolean;
}

export interface Servers {
  /** Throws when read before the `before` hook finished or when not requested. */
  readonly postgres: PgServer;
  readonly mongo: MongoServer;
}

/**
 * For the top level of a node:test file or inside describe(): starts the servers in a `before` hook
 * and stops them in an `after` hook, also when a start or a test fails.
 */
export function useServers(choice: ServerChoice = {}): Servers {
  const running = new RunningServers(choice);
  let failed = false;
  // Registered before `before` so the servers are stopped even if a start fails half-way.
  after(() => running.stop(failed));
  afterEach((t) => {
    // `passed` exists at run time since Node 20.16; @types/node does not declare it yet.
    if ((t as { passed?: boolean }).passed === false) failed = true;
  });
  before(() => running.start());
  return running;
}

/** Something with `after(fn)`: a node:test TestContext or SuiteContext. */
export interface HasAfter {
  after(fn: () => unknown): void;
}

/**
 * For one test: `const { postgres } = await startServers(t, { mongo: false })`. Registers the stop
 * with `t.after` before starting anything, so a failed start still cleans up.
 */
export async function startServers(t: HasAfter, choice: ServerChoice = {}): Promise<Servers> {
  const running = new RunningServers(choice);
  t.after(() => running.stop((t as { passed?: boolean }).passed === false));
  await running.start();
  return running;
}

class RunningServers implements Servers {
  #pg: Promise<PgServer> | null = null;
  #mongo: Promise<MongoServer> | null = null;
  #pgReady: PgServer | null = null;
  #mongoReady: MongoServer | null = null;
  readonly #choice: ServerChoice;

  constructor(choice: ServerChoice) {
    this.#choice = choice;
  }

  async start(): Promise<void> {
    const pgChoice = this.#choice.postgres;
    if (pgChoice !== false) this.#pg = startPostgres(typeof pgChoice === 'object' ? pgChoice : {});
    if (this.#choice.mongo !== false) this.#mongo = startFerretDb();
    // Both start in parallel; allSettled so one failing does not leave the other unobserved.
    const [pg, mongo] = await Promise.allSettled([this.#pg, this.#mongo]);
    if (pg.status === 'fulfilled') this.#pgReady = pg.value;
    if (mongo.status === 'fulfilled') this.#mongoReady = mongo.value;
    if (pg.status === 'rejected') throw pg.reason;
    if (mongo.status === 'rejected') throw mongo.reason;
  }

  async stop(testFailed: boolean): Promise<void> {
    const keepData = testFailed && process.env.KEEP_TEST_DATA === '1';
    const results = await Promise.allSettled(
      [this.#pg, this.#mongo].map(async (starting) => {
        // A start that failed already cleaned up after itself.
        const server = await starting?.catch(() => null);
        await server?.stop({ keepData });
      }),
    );
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
  }

  get postgres(): PgServer {
    if (this.#pgReady) return this.#pgReady;
    throw new Error(this.#choice.postgres === false ? 'PostgreSQL was not requested from useServers()' : 'PostgreSQL is not started yet (read servers.postgres inside a test, not at load time)');
  }

  get mongo(): MongoServer {
    if (this.#mongoReady) return this.#mongoReady;
    throw new Error(this.#choice.mongo === false ? 'FerretDB was not requested from useServers()' : 'FerretDB is not started yet (read servers.mongo inside a test, not at load time)');
  }
}
