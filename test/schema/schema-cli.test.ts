// `etl schema` as a user runs it: spawned without a TTY, NO_COLOR=1, against a real PostgreSQL.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ETL = path.join(ROOT, 'bin/etl.js');

function etl(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [ETL, ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('etl schema', () => {
  const servers = useServers({ mongo: false });

  test('creates the tables (exit 0), is idempotent, --check is clean (exit 0); no password printed', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const password = servers.postgres.password;
    const first = await etl(['schema', '--database-url', url]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /33 table\(s\) created, 0 already there/);
    assert.match(first.stdout, /created {2}users_logbook/);
    const second = await etl(['schema', '--database-url', url]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /0 table\(s\) created, 33 already there/);
    const check = await etl(['schema', '--check', '--database-url', url]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /no difference: .* matches pipeline\.yaml \(33 tables checked\)/);
    for (const r of [first, second, check]) {
      assert.ok(!r.stdout.includes(password) && !r.stderr.includes(password), 'password printed');
    }
    assert.match(first.stdout, /:\*\*\*@/);
  });

  test('--check after drift: exit 1, the differences and the DDL that fixes them', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    assert.equal((await etl(['schema', '--database-url', url])).code, 0);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query('ALTER TABLE users DROP COLUMN phone');
      await client.query('ALTER TABLE users ADD COLUMN nickname text');
    } finally {
      await client.end();
    }
    const r = await etl(['schema', '--check', '--database-url', url]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /2 difference\(s\)/);
    assert.match(r.stdout, /users: column "users"\."phone" is missing\n {2}ALTER TABLE "users" ADD COLUMN "phone" VARCHAR\(255\);/);
    assert.match(r.stdout, /users: column "users"\."nickname" \(text\) is not in pipeline\.yaml.*\n {2}-- ALTER TABLE "users" DROP COLUMN "nickname"\n/);
    const json = await etl(['schema', '--check', '--json', '--database-url', url]);
    assert.equal(json.code, 1);
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.ok, false);
    assert.deepEqual(
      doc.findings.map((f: { kind: string; column: string }) => [f.kind, f.column]),
      [
        ['missing_column', 'phone'],
        ['extra_column', 'nickname'],
      ],
    );
    // `etl schema` itself never alters an existing table, and says drift exists.
    const apply = await etl(['schema', '--database-url', url]);
    assert.equal(apply.code, 0);
    assert.match(apply.stdout, /2 difference\(s\) between the database and pipeline\.yaml/);
  });

  test('--dry-run prints the DDL without connecting', async () => {
    const r = await etl(['schema', '--dry-run', '--database-url', 'postgresql://nobody:secret@127.0.0.1:1/none']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^CREATE TABLE IF NOT EXISTS "ingredients" \(/);
    assert.match(r.stdout, /CONSTRAINT "users_company_id_fkey" FOREIGN KEY \("company_id"\) REFERENCES "companies" \("id"\)/);
    assert.match(r.stdout, /CREATE TABLE IF NOT EXISTS "etl_runs"/);
    assert.equal((r.stdout.match(/^CREATE TABLE/gm) ?? []).length, 33);
  });

  test('an unreachable server: exit 1, the password redacted; bad flags: exit 2', async () => {
    const r = await etl(['schema', '--database-url', 'postgresql://nobody:s3cretpw@127.0.0.1:1/none']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect to PostgreSQL/);
    assert.ok(!r.stderr.includes('s3cretpw') && !r.stdout.includes('s3cretpw'));
    assert.equal((await etl(['schema', '--check', '--dry-run'])).code, 2);
    assert.equal((await etl(['schema', '--frobnicate'])).code, 2);
  });
});
