// A real MongoDB-wire server for tests: the one MONGODB_URL names, or a throwaway FerretDB 1.24.2
// (SQLite backend) in a temp dir on a free port. Databases appear on first write, so "a fresh
// database" means a name nobody used, dropped first in case a previous run left it behind.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';
import { isRunning, trackDir, type TrackedDir } from './children.ts';
import { freePort } from './free-port.ts';
import { databaseNameFor } from './names.ts';
import type { StopOptions } from './postgres.ts';
import { stopChild } from './stop-child.ts';

export const FERRETDB_VERSION = 'v1.24.2';

export interface MongoServer {
  /** Connection string without a database (may hold credentials when external: never print it). */
  readonly url: string;
  /** True when the server is the one MONGODB_URL names (nothing was started). */
  readonly external: boolean;
  /** The temp dir holding the SQLite files; null for an external server. */
  readonly dir: string | null;
  /** The database name a test gets: [a-z0-9_], ≤ 63 characters (databaseNameFor). */
  databaseName(testName: string): string;
  /** Connection string naming that exact database (etl reads the database from the URL's path). */
  databaseUrl(name: string): string;
  dropDatabase(name: string): Promise<void>;
  /** Drops any leftover database for that test and returns its name and URL. */
  newDatabase(testName: string): Promise<{ name: string; url: string }>;
  /** Stops the server (an external one: drops the databases newDatabase handed out). Idempotent. */
  stop(options?: StopOptions): Promise<void>;
}

const READY_TIMEOUT_MS = Number(process.env.TEST_SERVER_READY_TIMEOUT_MS ?? 30_000);
const START_ATTEMPTS = 3;
const HARNESS_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HARNESS_DIR, '../..');

export async function startFerretDb(): Promise<MongoServer> {
  const given = process.env.MONGODB_URL;
  return given ? useExistingMongo(given) : startLocalFerretDb();
}

/** Path of the FerretDB binary, built (about a minute, needs Go) when it is not there yet. */
export async function ferretDbBinary(): Promise<string> {
  const wanted = process.env.FERRETDB_BIN || path.join(REPO_ROOT, 'node_modules/.cache/ferretdb', `ferretdb-${FERRETDB_VERSION}`);
  if (existsSync(wanted)) return wanted;
  const script = path.join(HARNESS_DIR, 'build-ferretdb.sh');
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('bash', [script, wanted], { maxBuffer: 64 * 1024 * 1024 }, (err, out, errOut) => {
      if (err) reject(new Error(`building FerretDB failed: ${err.message}\n${errOut.slice(-4000)}`));
      else resolve(out);
    });
  });
  const built = stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(built)) throw new Error(`build-ferretdb.sh printed no binary path (got "${built}")`);
  return built;
}

function useExistingMongo(url: string): MongoServer {
  const handedOut = new Set<string>();
  let stopping: Promise<void> | null = null;
  const stop = (options: StopOptions = {}): Promise<void> => {
    stopping ??= (async () => {
      if (options.keepData) {
        process.stderr.write(`[harness] kept test databases on the MONGODB_URL server: ${[...handedOut].join(', ')}\n`);
        return;
      }
      for (const name of handedOut) await dropMongoDatabase(url, name).catch(() => undefined);
    })();
    return stopping;
  };
  // Databases handed out on a server the harness does not own are dropped when it stops.
  return makeServer(url, null, stop, (name) => handedOut.add(name));
}

async function startLocalFerretDb(): Promise<MongoServer> {
  const binary = await ferretDbBinary();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-ferretdb-'));
  // From now on: a process that ends during the start still removes the dir.
  const tracked = trackDir(dir);
  const log: string[] = [];
  const remember = (chunk: Buffer): void => {
    log.push(...chunk.toString('utf8').trimEnd().split('\n'));
    if (log.length > 60) log.splice(0, log.length - 60);
  };

  let child: ChildProcess | undefined;
  let stopping: Promise<void> | null = null;
  const stop = (options: StopOptions = {}): Promise<void> => {
    stopping ??= (async () => {
      if (child) await stopChild(child, 'SIGTERM', 5_000);
      tracked.untrack();
      if (options.keepData) {
        process.stderr.write(`[harness] kept FerretDB data: ${dir}\n`);
        return;
      }
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    })();
    return stopping;
  };

  try {
    await chmod(dir, 0o700);
    for (let attempt = 1; ; attempt++) {
      const started = await spawnFerretDb(binary, dir, remember, tracked);
      child = started.child;
      if (await answersPing(started, binary, log)) return makeServer(started.url, dir, stop);
      // FerretDB died before answering: most likely someone took the port in between.
      child = undefined;
      if (attempt >= START_ATTEMPTS) {
        throw new Error(`FerretDB exited during start (${START_ATTEMPTS} attempts)\n${log.join('\n')}`);
      }
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

interface StartedFerretDb {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  /** Set when the binary could not be run at all. */
  readonly failed: { error: Error | null };
}

/** Starts FerretDB on a free port, its output kept by `remember`, tracked by the exit hook. */
async function spawnFerretDb(binary: string, dir: string, remember: (chunk: Buffer) => void, tracked: TrackedDir): Promise<StartedFerretDb> {
  const port = await freePort();
  const child = spawn(binary, ferretDbArgs(dir, port), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', remember);
  child.stderr?.on('data', remember);
  const failed: { error: Error | null } = { error: null };
  child.once('error', (error) => {
    failed.error = error;
  });
  tracked.runs(child, 'SIGKILL');
  // A forgotten stop() must not hang the test process: the exit hook kills the server instead.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  return { child, url: `mongodb://127.0.0.1:${port}/`, port, failed };
}

/** True once the server answers ping; false if it exits first; throws when it cannot run or stays silent. */
async function answersPing(started: StartedFerretDb, binary: string, log: readonly string[]): Promise<boolean> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown = null;
  for (;;) {
    if (started.failed.error) throw new Error(`cannot run ${binary}: ${started.failed.error.message}`);
    if (!isRunning(started.child)) return false;
    try {
      await ping(started.url, started.port);
      return true;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`FerretDB did not answer ping within ${READY_TIMEOUT_MS} ms (${String((lastError as Error)?.message ?? lastError)})\n${log.join('\n')}`);
    }
    await sleep(50);
  }
}

function makeServer(url: string, dir: string | null, stop: (options?: StopOptions) => Promise<void>, onHandedOut?: (name: string) => void): MongoServer {
  return {
    url,
    external: dir === null,
    dir,
    databaseName: databaseNameFor,
    databaseUrl: (name) => withDatabase(url, name),
    dropDatabase: (name) => dropMongoDatabase(url, name),
    async newDatabase(testName) {
      const name = databaseNameFor(testName);
      await dropMongoDatabase(url, name);
      onHandedOut?.(name);
      return { name, url: withDatabase(url, name) };
    },
    stop,
  };
}

/**
 * FerretDB's command line for a data directory and a port: SQLite files in `dir`, loopback only, and
 * no debug listener (its default port 8088 would collide between instances).
 */
export function ferretDbArgs(dir: string, port: number): string[] {
  return [
    '--handler=sqlite',
    `--sqlite-url=file:${dir}/`,
    `--state-dir=${dir}`,
    `--listen-addr=127.0.0.1:${port}`,
    '--debug-addr=-',
    '--telemetry=disable',
    '--log-level=error',
  ];
}

/** One readiness probe of a server on 127.0.0.1:port: throws until it answers `ping`. */
export async function ping(url: string, port: number): Promise<void> {
  // The driver, refused once, waits for its next heartbeat (500 ms) before trying again; a plain TCP
  // connect first keeps start-up time to what the server needs.
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 1_000, connectTimeoutMS: 1_000 });
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
  } finally {
    await client.close().catch(() => undefined);
  }
}

async function dropMongoDatabase(url: string, name: string): Promise<void> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
  try {
    await client.connect();
    await client.db(name).dropDatabase();
  } finally {
    await client.close().catch(() => undefined);
  }
}

/**
 * Puts the database into the URL's path. Done on the text, not with `new URL`: a MongoDB URL may
 * list several hosts (`mongodb://a:1,b:2/db?replicaSet=x`), which WHATWG URL parsing rejects.
 */
export function withDatabase(url: string, name: string): string {
  const scheme = url.match(/^mongodb(\+srv)?:\/\//)?.[0];
  if (!scheme) throw new Error('MONGODB_URL must start with mongodb:// or mongodb+srv://');
  const rest = url.slice(scheme.length);
  const queryAt = rest.indexOf('?');
  const beforeQuery = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const query = queryAt === -1 ? '' : rest.slice(queryAt);
  const slash = beforeQuery.indexOf('/');
  const hosts = slash === -1 ? beforeQuery : beforeQuery.slice(0, slash);
  return `${scheme}${hosts}/${encodeURIComponent(name)}${query}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
