// `etl run`, `etl runs` and `etl report` as a user runs them in remote mode (TRANSFER_SOURCE=remote,
// TRANSFER_DESTINATION=remote) through a real OpenSSH server (test/remote/sshd.ts): what they name as
// the run's source and destination is the configured server behind the SSH hop, never the tunnel's
// local end (127.0.0.1:<random port>, a different one each run) nor a password.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { etl as run, type CliResult } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { PIPELINE, seedMongo } from '../inspect/planted.ts';
import { startSshd, type Sshd } from './sshd.ts';

const servers = useServers();
let sshd: Sshd;
before(async () => {
  sshd = await startSshd();
});
after(async () => {
  await sshd?.stop();
});

/** HOME is the case's folder: no ~/.ssh of the developer's is read. */
function etl(args: string[], env: Record<string, string>, cwd: string): Promise<CliResult> {
  return run(args, { cwd, env: { HOME: cwd, ETL_PIPELINE: PIPELINE, ETL_STAGING: path.join(cwd, 'staging'), ...env } });
}

test('remote source and destination: the manifest, the final line, etl runs and etl report name the servers as configured and the SSH hop', async (t) => {
  const mongo = await servers.mongo.newDatabase(t.name);
  await seedMongo(mongo.url, mongo.name);
  const pgUrl = new URL(await servers.postgres.createDatabase(t.name));
  const pgDatabase = pgUrl.pathname.slice(1);
  const cwd = await tempDir('etl-remote-run-', t);
  const mongoPort = new URL(servers.mongo.url).port;
  const env = {
    TRANSFER_SOURCE: 'remote',
    TRANSFER_DESTINATION: 'remote',
    REMOTE_SERVER_URL: '127.0.0.1',
    REMOTE_SERVER_PORT: String(sshd.port),
    REMOTE_SERVER_USER: sshd.user,
    REMOTE_SERVER_PASSWORD: sshd.password,
    REMOTE_SERVER_KNOWN_HOSTS: sshd.knownHostsFile,
    REMOTE_MONGODB_URL: `mongodb://localhost:${mongoPort}/`,
    REMOTE_MONGODB_DATABASE: mongo.name,
    REMOTE_POSTGRES_HOST: 'localhost',
    REMOTE_POSTGRES_PORT: String(servers.postgres.port),
    REMOTE_POSTGRES_DATABASE: pgDatabase,
    REMOTE_POSTGRES_USER: servers.postgres.user,
    REMOTE_POSTGRES_PASSWORD: servers.postgres.password,
  };
  const hop = `via SSH ${sshd.user}@127.0.0.1:${sshd.port}`;
  const source = `mongodb://localhost:${mongoPort}/ (database ${mongo.name}) ${hop}`;
  const destination = `postgresql://${servers.postgres.user}@localhost:${servers.postgres.port}/${pgDatabase} ${hop}`;
  const noTunnelEnd = (text: string, what: string): void => {
    // 127.0.0.1 is also the SSH server's address here: only its port may follow.
    for (const m of text.matchAll(/127\.0\.0\.1:(\d+)/g)) assert.equal(Number(m[1]), sshd.port, `${what} names a tunnel's local end: ${text}`);
    assert.ok(!text.includes(servers.postgres.password) && !text.includes(sshd.password), `${what} holds no password`);
  };

  const r = await etl(['run', '--tables', 'users'], env, cwd);
  assert.equal(r.code, 0, r.output);
  const runId = /^run (\S+): /m.exec(r.stdout)?.[1];
  assert.ok(runId, r.stdout);
  assert.match(r.stdout, new RegExp(`^run ${runId}: .* loaded into ${escape(destination)} in `, 'm'), 'the final line');
  noTunnelEnd(r.output, 'etl run');

  const manifest = JSON.parse(await readFile(path.join(cwd, 'staging', runId, 'manifest.json'), 'utf8'));
  assert.equal(manifest.source.description, source);
  assert.equal(manifest.destination.description, destination);

  const runs = await etl(['runs'], env, cwd);
  assert.equal(runs.code, 0, runs.output);
  assert.match(runs.stdout, new RegExp(`^ledger: ${escape(destination)}$`, 'm'), runs.stdout);
  const json = await etl(['runs', '--json'], env, cwd);
  assert.equal(JSON.parse(json.stdout).runs[0].source, source);
  noTunnelEnd(runs.output, 'etl runs');
  // --database-url: that database's ledger is read, directly, and named, not the remote one.
  const direct = await etl(['runs', '--database-url', pgUrl.href], env, cwd);
  assert.equal(direct.code, 0, direct.output);
  assert.match(direct.stdout, new RegExp(`^ledger: postgresql://${servers.postgres.user}:\\*+@${escape(pgUrl.host)}/${pgDatabase}$`, 'm'), direct.stdout);

  const report = await etl(['report'], env, cwd);
  assert.equal(report.code, 0, report.output);
  const html = await readFile(path.join(cwd, 'staging', runId, 'report.html'), 'utf8');
  assert.ok(html.includes(htmlText(source)), 'the report names the configured source');
  noTunnelEnd(html, 'the report');

  // A second run goes through new tunnels (other local ports): still the same destination, so
  // the load does not take it for another database.
  const again = await etl(['run', '--tables', 'users'], env, cwd);
  assert.equal(again.code, 0, again.output);
  assert.match(again.stdout, new RegExp(`loaded into ${escape(destination)} in `), again.output);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function htmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
