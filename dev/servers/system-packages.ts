// Debian packages some tests need besides Node: OpenSSH's server (tunnel and refresh tests), PgBouncer,
// PostgreSQL's own binaries (pg_dump/pg_restore matching a server), Chromium (the HTML report),
// Go (to build FerretDB, see build-ferretdb.sh). On a fresh Debian machine run as root (CI, a
// container) they are installed on first use, as `bash .ci/run` does; otherwise the test fails
// with the exact command to run. Never skipped: a test that cannot run is a failure.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';

export interface SystemNeed {
  /** What the tests use it for, for the error message. */
  readonly why: string;
  readonly packages: readonly string[];
  /** True when what is needed is already there. */
  present(): boolean;
}

export const SSHD: SystemNeed = { why: 'the SSH tunnel and refresh tests run an OpenSSH server', packages: ['openssh-server', 'openssh-client'], present: () => existsSync('/usr/sbin/sshd') };

export const PGBOUNCER: SystemNeed = { why: 'the connection pooler tests run etl through a real PgBouncer', packages: ['pgbouncer'], present: () => existsSync('/usr/sbin/pgbouncer') };

export const CHROMIUM: SystemNeed = { why: 'the HTML report is checked in a real headless Chromium', packages: ['chromium'], present: () => existsSync('/usr/bin/chromium') };

export const DEBIAN_POSTGRES: SystemNeed = {
  why: 'tests of pg_dump/pg_restore need a PostgreSQL server and client of the same major version',
  packages: ['postgresql', 'postgresql-client'],
  present: () => existsSync('/usr/bin/pg_dump') && existsSync('/usr/lib/postgresql'),
};

const installing = new Map<string, Promise<void>>();

export function ensureSystem(need: SystemNeed): Promise<void> {
  if (need.present()) return Promise.resolve();
  const key = need.packages.join(' ');
  let p = installing.get(key);
  if (!p) {
    p = install(need);
    installing.set(key, p);
  }
  return p;
}

async function install(need: SystemNeed): Promise<void> {
  const command = `apt-get install -y ${need.packages.join(' ')}`;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    throw new Error(`${need.why}: missing ${need.packages.join(', ')}. Install them (as root: ${command}) or run \`bash .ci/run\`.`);
  }
  if (need.packages.includes('postgresql')) {
    // The package would create and start a "main" cluster on port 5432: the tests start their own.
    await mkdir('/etc/postgresql-common/createcluster.d', { recursive: true });
    await writeFile('/etc/postgresql-common/createcluster.d/etl-tests.conf', 'create_main_cluster = false\n');
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) => run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], env);
  await apt(['update', '-qq']);
  await apt(['install', '-y', '-qq', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', ...need.packages]);
  if (!need.present()) throw new Error(`installed ${need.packages.join(', ')} but still missing what ${need.why}`);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, maxBuffer: 64 << 20, timeout: 20 * 60_000 }, (err, _out, errOut) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${errOut.slice(-2000)}`));
      else resolve();
    });
  });
}
