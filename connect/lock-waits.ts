// Who etl waits for. A statement waiting for a lock another session holds (an analyst's transaction
// left open on a table `etl schema` alters or a load truncates, a backup, a LOCK TABLE, a row someone
// is updating) waits without a word: PostgreSQL tells the waiting session nothing, and the command
// looks hung. While a load or `etl schema` runs, a second connection, opened only once the command
// has run a few seconds, asks the server every few seconds whether etl's backend waits for a lock
// (pg_blocking_pids); the command then says which sessions it waits for, once per set of them, and
// when it no longer waits. It never cancels nor ends a session: that is the operator's decision, and
// the message says how.
import pg from 'pg';
import { roughDuration } from '../staging/durations.ts';
import { printableLine } from '../errors/printable.ts';
import { compiled, runSql } from '../schema/sql.ts';
import type { PostgresConfig } from './config.ts';
import { pgClientConfig } from './postgres.ts';

/** A session of the server, as far as etl's role may see it (other users' details may be hidden). */
export interface ServerSession {
  readonly pid: number;
  readonly applicationName: string | null;
  readonly user: string | null;
  readonly client: string | null;
  readonly backendStart: Date | null;
  /** pg_stat_activity's state (`active`, `idle in transaction`, …) and since when its transaction runs. */
  readonly state?: string | null;
  readonly transactionStart?: Date | null;
}

/** pg_stat_activity's columns a ServerSession is read from (table alias `a`). */
export const SESSION_COLUMNS = 'a.pid, a.application_name, a.usename, host(a.client_addr) AS client, a.backend_start, a.state, a.xact_start';

export interface SessionRow {
  pid: number;
  application_name: string | null;
  usename: string | null;
  client: string | null;
  backend_start: Date | null;
  state: string | null;
  xact_start: Date | null;
}

export function serverSession(row: SessionRow): ServerSession {
  return {
    pid: Number(row.pid),
    applicationName: row.application_name || null,
    user: row.usename,
    client: row.client,
    backendStart: row.backend_start,
    state: row.state,
    transactionStart: row.xact_start,
  };
}

/**
 * `application "etl", user postgres, from 10.0.0.5, connected since … (3 min ago)`, or, in a
 * transaction, `…, transaction begun … (2 min ago), now idle in transaction`: how long it has held
 * its locks, and whether it is doing anything.
 */
export function describeSession(s: ServerSession, now: Date = new Date()): string {
  const since = (d: Date): string => `${d.toISOString()} (${roughDuration(now.getTime() - d.getTime())} ago)`;
  const parts = [
    s.applicationName ? `application "${shown(s.applicationName)}"` : null,
    s.user ? `user ${shown(s.user)}` : null,
    s.client ? `from ${s.client}` : 'over a local socket',
    s.backendStart && !s.transactionStart ? `connected since ${since(s.backendStart)}` : null,
    s.transactionStart ? `transaction begun ${since(s.transactionStart)}${s.state ? `, now ${s.state}` : ''}` : null,
  ].filter((p): p is string => p !== null);
  return parts.join(', ');
}

/** A name another session chose (a role may be named anything): one short line on the operator's screen. */
const shown = (name: string): string => printableLine(name.replace(/\n/g, '\\n'), 100);

/** The sessions holding what `pid` waits for, and the table it waits for when the lock is a table's. */
const WAITING_FOR = (pid: number) =>
  compiled(
    `SELECT ${SESSION_COLUMNS}, (SELECT l.relation::regclass::text FROM pg_locks l WHERE l.pid = $1 AND NOT l.granted AND l.relation IS NOT NULL LIMIT 1) AS waited_table ` +
      `FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1)) ORDER BY a.pid`,
    [pid],
  );

const FIRST_LOOK_MS = 3000;
const EVERY_MS = 3000;

export interface LockWatch {
  stop(): Promise<void>;
}

const BACKEND_PID = compiled('SELECT pg_backend_pid() AS pid');

/** watchLockWaits of the backend running `client`'s transaction (call inside it: through a pooler, the server connection is the transaction's). */
export async function watchTransaction(client: pg.Client, config: PostgresConfig, onWait: (message: string | null) => void): Promise<LockWatch> {
  const pid = Number((await runSql<{ pid: number }>(client, BACKEND_PID)).rows[0]!.pid);
  return watchLockWaits(config, pid, onWait);
}

/**
 * Watches backend `pid` (the one running the command's transaction, as it reads it itself: through
 * a pooler, not the pid pg was given) until stop(), telling `onWait` whom it waits for (null once it
 * no longer waits). A failure of the watch (no connection left, a pooler refusing) ends it silently:
 * it is a courtesy, never the command's failure.
 */
export function watchLockWaits(config: PostgresConfig, pid: number, onWait: (message: string | null) => void, firstLookMs = FIRST_LOOK_MS): LockWatch {
  let side: pg.Client | null = null;
  let said = '';
  let stopped = false;
  let looking: Promise<void> = Promise.resolve();
  const look = async (): Promise<void> => {
    try {
      if (!side) {
        side = new pg.Client(pgClientConfig(config));
        side.on('error', () => undefined);
        await side.connect();
      }
      const rows = (await runSql(side, WAITING_FOR(pid))).rows as (SessionRow & { waited_table: string | null })[];
      const seen = rows.map((r) => r.pid).join(',');
      if (seen !== said && !stopped) onWait(rows.length > 0 ? waitingMessage(rows.map(serverSession), rows[0]!.waited_table) : null);
      said = seen;
    } catch {
      stopped = true;
    }
    if (!stopped) timer = setTimeout(next, EVERY_MS).unref();
  };
  const next = (): void => {
    looking = look();
  };
  let timer = setTimeout(next, firstLookMs).unref();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      // Ended first: a look waiting for a server connection (a pooler whose pool the command's own
      // transaction fills) must not hold the command's end.
      await (side as pg.Client | null)?.end().catch(() => undefined);
      await looking;
    },
  };
}

function waitingMessage(holders: readonly ServerSession[], table: string | null): string {
  const what = table ? `a lock on table ${table}` : 'a lock';
  const who = holders.map((h) => `PostgreSQL backend pid ${h.pid} (${describeSession(h)})`).join('; ');
  const pids = holders.map((h) => h.pid);
  const end = pids.length === 1 ? `SELECT pg_terminate_backend(${pids[0]});` : `SELECT pg_terminate_backend(pid) FROM unnest('{${pids.join(',')}}'::int[]) AS pid;`;
  return `waiting for ${what} held by ${who}; it goes on once ${pids.length === 1 ? 'that transaction ends' : 'those transactions end'} (to end ${pids.length === 1 ? 'it' : 'them'}: ${end})…`;
}
