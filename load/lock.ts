// One etl load at a time per database: an advisory lock on a fixed key, taken first thing in the
// load's transaction and released by its end (COMMIT, ROLLBACK, or the connection lost). Not a
// session-level lock: through a pooler in transaction pooling (PgBouncer), the statement taking it and
// the one releasing it ran on different server connections, and the lock stayed held by a connection
// the application was using: every later load waited for a load that had ended. A second load waits
// for the first to end (default), refuses at once (--no-wait), or waits at most a given time
// (--lock-timeout 30s); whoever waits or gives up is told which session holds the lock
// (schema/advisory-lock.ts).
import type pg from 'pg';
import { roughDuration } from '../staging/durations.ts';
import { LoadError, UsageError } from '../errors/etl-error.ts';
import { compiled } from '../schema/sql.ts';
import { takeXactLock } from '../schema/advisory-lock.ts';

/** 'etl_load' in ASCII, as a bigint: the advisory lock key of `etl load`. */
export const LOAD_LOCK_KEY = '7310587252226089316';

const TRY_LOCK = compiled('SELECT pg_try_advisory_xact_lock($1::bigint) AS ok, $1::bigint::text AS key', [LOAD_LOCK_KEY]);

/** wait: until the lock is free; fail: at once; timeoutMs: at most that long, then fail. */
export type LockPolicy = 'wait' | 'fail' | { readonly timeoutMs: number };

/** In the load's transaction: the lock is the transaction's until it ends. */
export async function acquireLoadLock(client: pg.Client, policy: LockPolicy, onWait: (message: string | null) => void, signal?: AbortSignal): Promise<void> {
  const timeoutMs = typeof policy === 'object' ? policy.timeoutMs : null;
  const deadline = timeoutMs === null ? null : Date.now() + timeoutMs;
  await takeXactLock(client, TRY_LOCK, {
    signal,
    deadline,
    check: (holder, who) => {
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
    },
    onWait: (who) => onWait(who === null ? null : `waiting for another etl load to finish${who}${timeoutMs === null ? '' : `; giving up after ${roughDuration(timeoutMs)}`}…`),
  });
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
