// The local programs a refresh runs (pg_dump, pg_restore, mongorestore): found on PATH or in the
// usual per-version install folders, their versions read with --version, so a pg_dump too old for
// the server is refused up front with a clear message instead of failing half-way.
import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ConfigError, EtlError } from '../errors/etl-error.ts';
import { PATH_SHAPE, quotedSettingValue } from '../errors/redact.ts';
import { collectTail } from './byte-meter.ts';

const execFileP = promisify(execFile);
type Env = Readonly<Record<string, string | undefined>>;

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Like `command -v name`: the first executable of that name on PATH. */
export async function findOnPath(name: string, env: Env): Promise<string | null> {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    if (await isExecutable(file)) return file;
  }
  return null;
}

export interface ToolVersion {
  readonly text: string;
  readonly major: number;
}

/** `pg_dump (PostgreSQL) 15.18 (Debian …)` → { text: '15.18', major: 15 }. */
async function toolVersion(file: string, env: Env): Promise<ToolVersion | null> {
  try {
    const { stdout } = await execFileP(file, ['--version'], { env: env as NodeJS.ProcessEnv, timeout: 15_000 });
    const m = /\b(\d+)(?:\.(\d+))?(?:\.\d+)?/.exec(stdout.replace(/^[^)]*\)/, ''));
    if (!m) return null;
    return { text: m[0], major: Number(m[1]) };
  } catch {
    return null;
  }
}

export interface PgTools {
  readonly pgDump: string;
  readonly pgRestore: string;
  readonly version: ToolVersion;
}

async function versionDirs(): Promise<string[]> {
  const found: string[] = [];
  const globs: Array<[string, RegExp, (name: string) => string]> = [
    ['/usr/lib/postgresql', /^\d+$/, (n) => `/usr/lib/postgresql/${n}/bin`],
    ['/usr', /^pgsql-\d+$/, (n) => `/usr/${n}/bin`],
    ['/opt/homebrew/opt', /^postgresql@\d+$/, (n) => `/opt/homebrew/opt/${n}/bin`],
    ['/usr/local/opt', /^postgresql@\d+$/, (n) => `/usr/local/opt/${n}/bin`],
  ];
  for (const [root, re, dir] of globs) {
    try {
      for (const name of await readdir(root)) if (re.test(name)) found.push(dir(name));
    } catch {
      // not on this system
    }
  }
  return found;
}

/** PG_BIN_DIR, when set, must hold both programs: said before any connection, as a wrong setting. */
export async function checkPgBinDir(pgBinDir: string | null): Promise<void> {
  if (!pgBinDir) return;
  const missing: string[] = [];
  for (const name of ['pg_dump', 'pg_restore']) if (!(await isExecutable(path.join(pgBinDir, name)))) missing.push(name);
  if (missing.length === 0) return;
  throw new ConfigError(`PG_BIN_DIR holds no executable ${missing.join(' nor ')}: got ${quotedSettingValue(pgBinDir, PATH_SHAPE)}`, [], {
    hint: 'set PG_BIN_DIR to the bin folder of a PostgreSQL client installation (e.g. /usr/lib/postgresql/17/bin), or unset it to search PATH and the usual folders',
    context: { variable: 'PG_BIN_DIR' },
  });
}

/**
 * pg_dump must be at least the server's major version (it refuses newer servers), and pg_restore
 * must read what that pg_dump wrote: both come from the same folder. Among the ones that fit, the
 * closest to the server's version is taken (its SQL suits older local servers best).
 */
export async function pickPgTools(o: { serverMajor: number; serverVersion: string; pgBinDir: string | null; env: Env }): Promise<PgTools> {
  const candidates: Array<{ pgDump: string; pgRestore: string }> = [];
  if (o.pgBinDir) {
    candidates.push({ pgDump: path.join(o.pgBinDir, 'pg_dump'), pgRestore: path.join(o.pgBinDir, 'pg_restore') });
  } else {
    for (const dir of await versionDirs()) candidates.push({ pgDump: path.join(dir, 'pg_dump'), pgRestore: path.join(dir, 'pg_restore') });
    const onPath = await findOnPath('pg_dump', o.env);
    if (onPath) candidates.push({ pgDump: onPath, pgRestore: (await findOnPath('pg_restore', o.env)) ?? path.join(path.dirname(onPath), 'pg_restore') });
  }
  const usable: Array<PgTools> = [];
  const tooOld: string[] = [];
  for (const c of candidates) {
    if (!(await isExecutable(c.pgDump)) || !(await isExecutable(c.pgRestore))) continue;
    const version = await toolVersion(c.pgDump, o.env);
    if (!version) continue;
    if (version.major >= o.serverMajor) usable.push({ ...c, version });
    else tooOld.push(`${c.pgDump} (${version.text})`);
  }
  usable.sort((a, b) => a.version.major - b.version.major);
  const best = usable[0];
  if (best) return best;
  const where = o.pgBinDir ? `PG_BIN_DIR=${o.pgBinDir}` : 'PATH and the usual PostgreSQL folders';
  throw new EtlError(
    'pg_dump_unavailable',
    tooOld.length
      ? `the remote PostgreSQL server is version ${o.serverVersion}, but the only pg_dump found is too old to dump it: ${tooOld.join(', ')} (pg_dump refuses servers newer than itself)`
      : `no pg_dump/pg_restore found in ${where}`,
    { hint: `install the PostgreSQL ${o.serverMajor} client tools (e.g. postgresql-client-${o.serverMajor} from apt.postgresql.org), or set PG_BIN_DIR to a folder holding pg_dump and pg_restore ${o.serverMajor} or newer` },
  );
}

export interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Last lines of stderr (already free of the password given in the environment). */
  readonly stderr: string;
}

/**
 * Runs a local program to completion. Its stdout goes through `stdoutTo` (with backpressure) when
 * given, else is discarded; an abort of `signal` kills it. Passwords go in `env` or `input` (its
 * stdin), never in args: a command line is shown by `ps` to every user.
 */
export async function runChild(
  file: string,
  args: readonly string[],
  o: { env: Env; signal?: AbortSignal; stdoutTo?: (stdout: Readable) => Promise<void>; secrets?: readonly string[]; input?: string },
): Promise<ChildResult> {
  o.signal?.throwIfAborted();
  const stdin = o.input === undefined ? 'ignore' : 'pipe';
  const child = spawn(file, args, { env: o.env as NodeJS.ProcessEnv, stdio: [stdin, 'pipe', 'pipe'], signal: o.signal, killSignal: 'SIGTERM' });
  // A tool that exits without reading all of it must not fail us with EPIPE.
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(o.input);
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  try {
    await spawned;
  } catch (err) {
    o.signal?.throwIfAborted();
    throw new EtlError('tool_failed', `cannot run ${file}: ${(err as Error).message}`, { cause: err });
  }
  const stderrTail = collectTail(child.stderr!);
  const stdoutDone = o.stdoutTo ? o.stdoutTo(child.stdout!) : pipeline(child.stdout!, devNull());
  let streamError: unknown = null;
  await stdoutDone.catch((err: unknown) => {
    streamError = err;
    child.kill('SIGTERM');
  });
  const [result, stderr] = await Promise.all([exited, stderrTail.catch(() => '')]);
  if (streamError) throw streamError;
  o.signal?.throwIfAborted();
  let text = stderr;
  for (const s of o.secrets ?? []) if (s.length >= 3) text = text.split(s).join('***');
  return { ...result, stderr: text };
}

function devNull(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}
