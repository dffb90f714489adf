// One etl load at a time per database: a session-level advisory lock on a fixed key. A second
// load waits for the first to end (default) or refuses at once (--no-wait). Waiting polls
// pg_try_advisory_lock rather than blocking in pg_advisory_lock, so Ctrl-C stops the wait at once.
import type pg from 'pg';
import { LoadError } from '../model/errors.ts';

/** 'etl_load' in ASCII, as a bigint: the advisory lock key of `etl load`. */
export const LOAD_LOCK_KEY = '7310587252226089316';
const POLL_MS = 200;

export async function acquireLoadLock(
  client: pg.Client,
  mode: 'wait' | 'fail',
  onWait: (message: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  let announced = false;
  for (;;) {
    signal?.throwIfAborted();
    const r = await client.query('SELECT pg_try_advisory_lock($1::bigint) AS ok', [LOAD_LOCK_KEY]);
    if ((r.rows[0] as { ok: boolean }).ok) return;
    const holder = await lockHolder(client);
    if (mode === 'fail') {
      throw new LoadError('load_locked', `another etl load is running on this database${holder ? ` (PostgreSQL backend pid ${holder})` : ''}`, {
        hint: 'wait for it to finish, or run without --no-wait to wait for it',
      });
    }
    if (!announced) {
      onWait(`waiting for another etl load to finish${holder ? ` (PostgreSQL backend pid ${holder})` : ''}…`);
      announced = true;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export async function releaseLoadLock(client: pg.Client): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1::bigint)', [LOAD_LOCK_KEY]);
}

/** The backend holding the lock (a bigint key is classid = high 32 bits, objid = low 32 bits, objsubid 1). */
async function lockHolder(client: pg.Client): Promise<number | null> {
  const r = await client.query(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
       AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
     LIMIT 1`,
    [LOAD_LOCK_KEY],
  );
  return r.rows.length ? Number((r.rows[0] as { pid: number }).pid) : null;
}
