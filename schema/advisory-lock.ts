// The transaction-level advisory locks etl takes: the load lock (one load at a time) and the schema
// lock (`etl schema` and a load never change tables at the same time). Whoever finds one taken says
// once which session holds it (pid, application, user, client, since when, from pg_locks and
// pg_stat_activity) and polls: a command waiting without a word looks hung, and a poll, unlike a
// blocking pg_advisory_xact_lock, lets Ctrl-C stop the wait at once.
import type pg from 'pg';
import { describeSession, serverSession, SESSION_COLUMNS, type ServerSession, type SessionRow } from '../connect/lock-waits.ts';
import { compiled, runSql, type CompiledQuery } from './sql.ts';

const POLL_MS = 200;

/**
 * The session holding the lock of a bigint key: PostgreSQL shows the key as classid (its high 32 bits)
 * and objid (its low 32 bits), both unsigned, with objsubid 1.
 */
const holderSql = (key: string): CompiledQuery =>
  compiled(
    `SELECT ${SESSION_COLUMNS}
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid = (($1::bigint >> 32) & 4294967295)::oid AND l.objid = ($1::bigint & 4294967295)::oid
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      LIMIT 1`,
    [key],
  );

export interface LockWait {
  /** Before each wait, with the holder and its description: throws to stop waiting (load's --no-wait, --lock-timeout). */
  readonly check?: (holder: ServerSession | null, who: string) => void;
  /** Said once when the lock is first found taken (`who` describes the holder, or is empty), and (null) once it is taken after that. */
  readonly onWait: (who: string | null) => void;
  /** A time (ms since the epoch) no sleep runs past, so `check` sees it come. */
  readonly deadline?: number | null;
  readonly signal?: AbortSignal;
}

/**
 * Takes a lock in the current transaction, waiting as `wait` says. `tryLock` returns `ok` (taken) and
 * `key`, the lock's bigint key as text.
 */
export async function takeXactLock(client: pg.Client, tryLock: CompiledQuery, wait: LockWait): Promise<void> {
  let announced = false;
  for (;;) {
    wait.signal?.throwIfAborted();
    const tried = (await runSql(client, tryLock)).rows[0] as { ok: boolean; key: string };
    if (tried.ok) {
      if (announced) wait.onWait(null);
      return;
    }
    const holder = await lockHolder(client, tried.key);
    const who = describeHolder(holder);
    wait.check?.(holder, who);
    if (!announced) {
      wait.onWait(who);
      announced = true;
    }
    const deadline = wait.deadline ?? null;
    await new Promise((resolve) => setTimeout(resolve, deadline === null ? POLL_MS : Math.max(0, Math.min(POLL_MS, deadline - Date.now()))));
  }
}

async function lockHolder(client: pg.Client, key: string): Promise<ServerSession | null> {
  const row = (await runSql(client, holderSql(key))).rows[0] as SessionRow | undefined;
  return row ? serverSession(row) : null;
}

/** ` (PostgreSQL backend pid 4242): application "etl", user postgres, …` (connect/lock-waits.ts), or nothing when hidden. */
function describeHolder(h: ServerSession | null): string {
  return h ? ` (PostgreSQL backend pid ${h.pid}): ${describeSession(h)}` : '';
}
