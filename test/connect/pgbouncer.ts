// A real PgBouncer in transaction pooling, in front of the test PostgreSQL: Debian's /usr/sbin/pgbouncer
// (installed from the pgbouncer package when missing), on a free loopback port, with its config, its
// users file and its log in a temp dir. In transaction pooling a client gets a server connection for
// one transaction only: what a client sets or locks for its session stays on a server connection the
// next client (the application) may get. Round robin over a pool kept open at its full size makes
// consecutive transactions of one client land on different server connections, every time.
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { spawnOwned, type OwnedChild } from '../../dev/servers/owned-child.ts';
import { freePort } from '../../dev/servers/free-port.ts';
import { runAsIds } from '../../dev/servers/postgres.ts';
import { ensureSystem, PGBOUNCER as PGBOUNCER_PACKAGES } from '../../dev/servers/system-packages.ts';

const PGBOUNCER = '/usr/sbin/pgbouncer';

export interface PgBouncer {
  /** `url`'s database through the pooler: same user, same password, the pooler's port. */
  urlOf(url: string): string;
  readonly poolSize: number;
  stop(): Promise<void>;
}

/** PgBouncer pooling the databases of the server at `serverUrl` (its user and password), `poolSize` server connections each. */
export async function startPgBouncer(serverUrl: string, poolSize = 3): Promise<PgBouncer> {
  await ensureSystem(PGBOUNCER_PACKAGES);
  const server = new URL(serverUrl);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-pgbouncer-'));
  let child: OwnedChild | undefined;
  const stop = async (): Promise<void> => {
    await child?.stop('SIGTERM', 5_000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // PgBouncer refuses to run as root: as root it runs as the postgres user the server runs as.
    const ids = runAsIds();
    if (ids.uid !== undefined) await chown(dir, ids.uid, ids.gid!);
    await chmod(dir, 0o700);
    const users = path.join(dir, 'users.txt');
    const quoted = (s: string) => `"${decodeURIComponent(s).replace(/"/g, '""')}"`;
    await writeFile(users, `${quoted(server.username)} ${quoted(server.password)}\n`, { mode: 0o600 });
    if (ids.uid !== undefined) await chown(users, ids.uid, ids.gid!);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const ini = path.join(dir, 'pgbouncer.ini');
      await writeFile(ini, config(server, port, users, poolSize, dir));
      child = spawnOwned(PGBOUNCER, [ini], ids, { signal: 'SIGKILL', dir: null });
      const urlOf = (url: string): string => {
        const u = new URL(url);
        u.host = `127.0.0.1:${port}`;
        return u.toString();
      };
      if (await answers(urlOf(serverUrl))) return { urlOf, poolSize, stop };
      await child.stop('SIGKILL', 1_000);
      if (attempt >= 3) throw new Error(`pgbouncer did not start:\n${child.stderr()}${await readFile(path.join(dir, 'pgbouncer.log'), 'utf8').catch(() => '')}`);
    }
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

function config(server: URL, port: number, users: string, poolSize: number, dir: string): string {
  return [
    '[databases]',
    `* = host=${server.hostname} port=${server.port}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = plain',
    `auth_file = ${users}`,
    'pool_mode = transaction',
    `default_pool_size = ${poolSize}`,
    `min_pool_size = ${poolSize}`,
    'server_round_robin = 1',
    'max_client_conn = 200',
    // node-postgres sends no startup parameter PgBouncer refuses; psql's are ignored here.
    'ignore_startup_parameters = extra_float_digits',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
    '',
  ].join('\n');
}

async function answers(url: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return false;
}
