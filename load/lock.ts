// One etl load at a time per database: an advisory lock on a fixed key, taken first thing in the
// load's transaction and released by its end (COMMIT, ROLLBACK, or the connection lost). Not a
// session-level lock: through a pooler in transaction pooling (PgBouncer), the statement taking it and
// the one releasing it ran on different server connections, and the lock stayed held by a connection
// the application was using: every later load waited for a load that had ended. A second load waits
// for the first to end (default), refuses at once (--no-wait), or waits at most a given time
// (--lock-timeout 30s); whoever waits or gives up is told which session holds the lock (pid,
// application, user, client, since when), from pg_locks and pg_stat_activity. Waiting polls
// pg_try_advisory_xact_lock rather than blocking, so Ctrl-C stops the wait at once.
import type pg from 'pg';
import { roughDuration } from '../staging/durations.ts';
import { LoadError, UsageError } from '../errors/etl-error.ts';
import { compiled, runSql } from '../schema/sql.ts';

/** 'etl_load' in ASCII, as a bigint: the advisory lock key of `etl load`. */
export const LOAD_LOCK_KEY = '7310587252226089316';
const POLL_MS = 200;

const TRY_LOCK = compiled('SELECT pg_try_advisory_xact_lock($1::bigint) AS ok', [LOAD_LOCK_KEY]);
/** The session holding the lock (a bigint key is classid = high 32 bits, objid = low 32 bits, objsubid 1). */
const LOCK_HOLDER = compiled(
  `SELECT l.pid, a.application_name, a.usename, host(a.client_addr) AS client, a.backend_start
     FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    LIMIT 1`,
  [LOAD_LOCK_KEY],
);

/** wait: until the lock is free; fail: at once; timeoutMs: at most that long, then fail. */
export type LockPolicy = 'wait' | 'fail' | { readonly timeoutMs: number };

/** The session holding the lock, as far as this session may see it (other users' details may be hidden). */
export interface LockHolder {
  readonly pid: number;
  readonly applicationName: string | null;
  readonly user: string | null;
  readonly client: string | null;
  readonly backendStart: Date | null;
}

/** In the load's transaction: the lock is the transaction's until it ends. */
export async function acquireLoadLock(client: pg.Client, policy: LockPolicy, onWait: (message: string) => void, signal?: AbortSignal): Promise<void> {
  const timeoutMs = typeof policy === 'object' ? policy.timeoutMs : null;
  const deadline = timeoutMs === null ? null : Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    signal?.throwIfAborted();
    const r = await runSql(client, TRY_LOCK);
    if ((r.rows[0] as { ok: boolean }).ok) return;
    const holder = await lockHolder(client);
    const who = describeHolder(holder);
    if (policy === 'fail') {
      throw new LoadError('load_locked', `another etl load is running on this database${who}`, {
        hint: 'wait for it to finish, run without --no-wait to wait for it, or with --lock-timeout 30s to wait at most that long',
        context: { pid: holder?.pid },
      });
    }
    if (deadline !== null && Date.now() >= deadline) {
      throw new LoadError('load_lock_timeout', `gave up waiting after ${roughDuration(timeoutMs!)} (--lock-timeout): another etl load still holds the lock on this database${who}`, {
        hint: holder ? `wait for it to finish, or, if it is stuck, end that session: SELECT pg_terminate_backend(${holder.pid});` : 'wait for it to finish, then run the load again',
        context: { pid: holder?.pid },
      });
    }
    if (!announced) {
      onWait(`waiting for another etl load to finish${who}${timeoutMs === null ? '' : `; giving up after ${roughDuration(timeoutMs)}`}…`);
      announced = true;
    }
    await new Promise((resolve) => setTimeout(resolve, deadline === null ? POLL_MS : Math.max(0, Math.min(POLL_MS, deadline - Date.now()))));
  }
}

async function lockHolder(client: pg.Client): Promise<LockHolder | null> {
  const r = await runSql(client, LOCK_HOLDER);
  const row = r.rows[0] as { pid: number; application_name: string | null; usename: string | null; client: string | null; backend_start: Date | null } | undefined;
  if (!row) return null;
  return { pid: Number(row.pid), applicationName: row.application_name || null, user: row.usename, client: row.client, backendStart: row.backend_start };
}

/** ` (PostgreSQL backend pid 4242): application "etl", user postgres, from 10.0.0.5, connected since … (3 min ago)` */
function describeHolder(h: LockHolder | null, now: Date = new Date()): string {
  if (!h) return '';
  const parts = [
    h.applicationName ? `application "${h.applicationName}"` : null,
    h.user ? `user ${h.user}` : null,
    h.client ? `from ${h.client}` : 'over a local socket',
    h.backendStart ? `connected since ${h.backendStart.toISOString()} (${roughDuration(now.getTime() - h.backendStart.getTime())} ago)` : null,
  ].filter((p): p is string => p !== null);
  return ` (PostgreSQL backend pid ${h.pid}): ${parts.join(', ')}`;
}

/** `30s`, `2m`, `1h`, `1500ms`, or a number of seconds → milliseconds (the --lock-timeout value). */
export function parseLockTimeout(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) {
    throw new UsageError('bad_lock_timeout', `--lock-timeout must be a duration such as 30s, 2m or 1h, got "${text}"`, { context: { flag: '--lock-timeout' } });
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}
