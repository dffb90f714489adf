// `etl schema` as a user runs it: spawned without a TTY, NO_COLOR=1, against a real PostgreSQL.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { useServers } from '../harness/index.ts';
import { withClient } from '../harness/schema.ts';
import { ETL_BIN, etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A login role of this test (dropped after it) and the URL of `url`'s database as that role. */
async function roleUrl(t: { after(fn: () => unknown): void }, url: string, prefix: string): Promise<{ url: string; password: string }> {
  const role = `${prefix}_${process.pid}`;
  const password = `${prefix}-pw`;
  await withClient(url, (c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`));
  t.after(() => withClient(url, (c) => c.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`)));
  const other = new URL(url);
  other.username = role;
  other.password = password;
  return { url: other.toString(), password };
}

/** Runs etl under a pseudo-terminal (util-linux `script`), typing `input`; the URL goes by environment. */
function onTerminal(args: readonly string[], url: string, input: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const cmd = [process.execPath, ETL_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', DATABASE_URL: url, TERM: 'dumb' } });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.on('error', reject);
    // Typed once the question is on the screen, as a person would.
    const typed = setInterval(() => {
      if (!output.includes('(yes/no)')) return;
      clearInterval(typed);
      child.stdin.write(input);
    }, 50);
    child.on('close', (code) => {
      clearInterval(typed);
      resolve({ code: code ?? 1, output });
    });
  });
}

describe('etl schema', () => {
  const servers = useServers({ mongo: false });

  test('creates the tables (exit 0), is idempotent, --check is clean (exit 0); no password printed', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const password = servers.postgres.password;
    const first = await etl(['schema', '--database-url', url]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /38 table\(s\) created, 0 already there/);
    assert.match(first.stdout, /created {2}users_logbook/);
    const second = await etl(['schema', '--database-url', url]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /0 table\(s\) created, 38 already there/);
    const check = await etl(['schema', '--check', '--database-url', url]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /no difference: .* matches pipeline\.yaml \(38 tables checked\)/);
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
    // What `etl schema` would do with each: the add is lossless, the drop needs its --allow.
    assert.match(r.stdout, /etl schema would apply 1 change\(s\) and refuse 1:\n {2}apply {4}users: column "users"\."phone" is missing: added/);
    assert.match(r.stdout, /refused {2}users: its values are lost .*\(--allow drop-column:users\.nickname\)/);
    assert.deepEqual(doc.plan.apply.map((c: { kind: string }) => c.kind), ['add_column']);
    assert.deepEqual(doc.plan.refused.map((c: { allow: string }) => c.allow), ['drop-column:users.nickname']);
    // Without a terminal and without --yes, `etl schema` changes no existing table and says what to do.
    const apply = await etl(['schema', '--database-url', url]);
    assert.equal(apply.code, 2, apply.stderr);
    assert.match(apply.stdout, /1 schema update\(s\) to apply:\n {2}apply {4}users: column "users"\."phone" is missing: added/);
    assert.match(apply.stdout, /refused {2}users: column "users"\."nickname" \(text\) is not in pipeline\.yaml/);
    assert.match(apply.stderr, /1 schema update\(s\) change existing tables and there is no terminal to confirm them: nothing was applied/);
    assert.match(apply.stderr, /pass --yes to apply them/);
    const still = await etl(['schema', '--check', '--database-url', url]);
    assert.match(still.stdout, /2 difference\(s\)/, 'nothing applied');
  });

  test('--check: a NOT NULL column missing from a table with rows shows the DDL etl schema runs (added nullable, NOT NULL once filled), which applies', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    assert.equal((await etl(['schema', '--database-url', url])).code, 0);
    await withClient(url, (c) => c.query(`ALTER TABLE companies DROP COLUMN name; INSERT INTO companies (id, created_at, updated_at) VALUES ('c1', now(), now())`));
    const r = await etl(['schema', '--check', '--database-url', url]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /companies: column "companies"\."name" is missing\n {2}ALTER TABLE "companies" ADD COLUMN "name" VARCHAR\(255\);\n {2}-- once a run has filled it: ALTER TABLE "companies" ALTER COLUMN "name" SET NOT NULL\n/);
    assert.doesNotMatch(r.stdout, /NOT NULL;/, 'no statement that fails on the rows there');
    const json = JSON.parse((await etl(['schema', '--check', '--json', '--database-url', url])).stdout);
    assert.deepEqual(json.findings.find((f: { column: string }) => f.column === 'name').fix, ['ALTER TABLE "companies" ADD COLUMN "name" VARCHAR(255)', '-- once a run has filled it: ALTER TABLE "companies" ALTER COLUMN "name" SET NOT NULL']);
    // What --check shows is what runs: the statement succeeds on the rows there.
    await withClient(url, (c) => c.query(json.findings.find((f: { column: string }) => f.column === 'name').fix[0]));
    // On an empty table the column is added NOT NULL at once, as the finding always said.
    const empty = await servers.postgres.createDatabase(`${t.name} empty`);
    assert.equal((await etl(['schema', '--database-url', empty])).code, 0);
    await withClient(empty, (c) => c.query('ALTER TABLE companies DROP COLUMN name'));
    const e = await etl(['schema', '--check', '--database-url', empty]);
    assert.match(e.stdout, /\n {2}ALTER TABLE "companies" ADD COLUMN "name" VARCHAR\(255\) NOT NULL;\n/);
  });

  test('--yes applies the lossless changes and lists the refused ones with their flag; --allow applies those', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    assert.equal((await etl(['schema', '--database-url', url])).code, 0);
    await withClient(url, (c) => c.query('ALTER TABLE users DROP COLUMN phone; ALTER TABLE users ADD COLUMN nickname text; ALTER TABLE users ALTER COLUMN role TYPE VARCHAR(50)'));
    const yes = await etl(['schema', '--yes', '--database-url', url]);
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stdout, /0 table\(s\) created, 38 already there; 2 change\(s\) applied to existing tables/);
    assert.match(yes.stdout, /applied {2}users: column "users"\."phone" is missing: added; the next run reads users in full to fill it \(mapping changed\)/);
    assert.match(yes.stdout, /applied {2}users: column "users"\."role" is character varying\(50\), pipeline\.yaml says VARCHAR\(100\): widened/);
    assert.match(yes.stdout, /1 change\(s\) not applied: they lose or may reject data/);
    assert.match(yes.stdout, /refused {2}users: column "users"\."nickname" \(text\) is not in pipeline\.yaml \(drop column\)\n {11}its values are lost.*\n {11}ALTER TABLE "users" DROP COLUMN "nickname";\n {11}apply with: --allow drop-column:users\.nickname/);
    const allowed = await etl(['schema', '--yes', '--allow', 'drop-column:users.nickname', '--json', '--database-url', url]);
    assert.equal(allowed.code, 0, allowed.stderr);
    const doc = JSON.parse(allowed.stdout);
    assert.deepEqual(doc.applied.map((c: { kind: string; column: string }) => [c.kind, c.column]), [['drop_column', 'nickname']]);
    assert.deepEqual(doc.refused, []);
    const check = await etl(['schema', '--check', '--database-url', url]);
    assert.equal(check.code, 0, check.stdout);
    assert.equal((await etl(['schema', '--allow', 'drop-everything', '--database-url', url])).code, 2);
  });

  test('a column that looks renamed: the rename, the add and the drop are offered, and the column load needs is named once', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    assert.equal((await etl(['schema', '--database-url', url])).code, 0);
    await withClient(url, (c) => c.query('ALTER TABLE users RENAME COLUMN phone TO phone_old'));
    const r = await etl(['schema', '--yes', '--database-url', url]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /apply with: --allow rename-column:users\.phone_old=phone\n/);
    assert.match(r.stdout, /apply with: --allow add-column:users\.phone\n/);
    assert.match(r.stdout, /\nload needs "users"\."phone": decide with --allow \(see above\)\n/);
  });

  test('a column that looks renamed, decided by adding the new one or dropping the old one: the rename is no longer offered, exit 0', async (t) => {
    const columns = (url: string) =>
      withClient(url, async (c) => (await c.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'users' AND column_name LIKE 'phone%' ORDER BY 1`)).rows.map((r) => r.column_name));
    const kinds = (changes: { kind: string; column: string }[]) => changes.map((c) => [c.kind, c.column]);
    // add-column: the new column is added, the old one stays (its drop still offered, load needs nothing).
    const added = await servers.postgres.createDatabase(`${t.name} add`);
    assert.equal((await etl(['schema', '--database-url', added])).code, 0);
    await withClient(added, (c) => c.query('ALTER TABLE users RENAME COLUMN phone TO phone_old'));
    const add = await etl(['schema', '--yes', '--allow', 'add-column:users.phone', '--json', '--database-url', added]);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const addDoc = JSON.parse(add.stdout);
    assert.equal(addDoc.ok, true);
    assert.deepEqual(kinds(addDoc.applied), [['add_column', 'phone']]);
    assert.deepEqual(kinds(addDoc.refused), [['drop_column', 'phone_old']], 'the rename is gone: "phone" exists now');
    assert.deepEqual(await columns(added), ['phone', 'phone_old']);
    // drop-column: the old column goes and the new one is added with it.
    const dropped = await servers.postgres.createDatabase(`${t.name} drop`);
    assert.equal((await etl(['schema', '--database-url', dropped])).code, 0);
    await withClient(dropped, (c) => c.query('ALTER TABLE users RENAME COLUMN phone TO phone_old'));
    const drop = await etl(['schema', '--yes', '--allow', 'drop-column:users.phone_old', '--database-url', dropped]);
    assert.equal(drop.code, 0, drop.stdout + drop.stderr);
    assert.doesNotMatch(drop.stdout, /rename-column|load needs|not applied/);
    assert.match(drop.stdout, /\n {2}applied {2}users: column "users"\."phone_old" \(character varying\(255\)\) is not in pipeline\.yaml \(drop column\)\n/);
    assert.doesNotMatch(drop.stdout, /kept/, 'a dropped column is not said to be kept');
    assert.deepEqual(await columns(dropped), ['phone']);
    assert.equal((await etl(['schema', '--check', '--database-url', dropped])).code, 0);
  });

  test('a table removed from pipeline.yaml: its pending entries are forgotten, and no row of it is reported deleted', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    assert.equal((await etl(['schema', '--database-url', url])).code, 0);
    const doc = parseDocument(await readFile(path.join(ROOT, 'pipeline.yaml'), 'utf8'));
    assert.ok(doc.deleteIn(['tables', 'messages']));
    const file = path.join(await tempDir('etl-schema-retired-', t), 'pipeline.yaml');
    await writeFile(file, doc.toString());
    // etl loaded messages once, and two of its rows wait for a user.
    await withClient(url, (c) =>
      c.query(`INSERT INTO etl_watermarks (table_name, watermark, run_id, updated_at, fingerprint) VALUES ('messages', now(), '20260101T000000000Z', now(), 'sha256:0');
        INSERT INTO etl_pending (table_name, row_key, kind, row, missing, run_id, since, seen_run)
          SELECT 'messages', jsonb_build_array(k), 'row', '{}', '{}', '20260101T000000000Z', now(), '20260101T000000000Z' FROM unnest(ARRAY['m1', 'm2']) AS k`),
    );
    const r = await etl(['schema', '--yes', '--json', '--pipeline', file, '--database-url', url]);
    assert.equal(r.code, 0, r.output);
    const report = JSON.parse(r.stdout);
    assert.ok(report.applied.some((c: { kind: string; table: string }) => c.kind === 'retire_table' && c.table === 'messages'));
    assert.deepEqual(report.deletedRows, {}, 'its rows stay: only its etl_pending entries go');
    const pending = await withClient(url, (c) => c.query(`SELECT count(*)::int AS n FROM etl_pending WHERE table_name = 'messages'`));
    assert.equal(pending.rows[0].n, 0);
  });

  test('a PostgreSQL user without the privileges: exit 1, PostgreSQL\'s refusal with its SQLSTATE and what to grant, not an internal error', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    assert.equal((await etl(['schema', '--database-url', url])).code, 0);
    const other = await roleUrl(t, url, 'nopriv');
    const r = await etl(['schema', '--yes', '--database-url', other.url]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^error: PostgreSQL refused: permission denied for table \w+ .*\[pg_42501\]/m);
    assert.match(r.stderr, /^hint: the PostgreSQL user lacks a privilege etl needs/m);
    assert.doesNotMatch(r.stderr, /internal error|bug in etl/);
    assert.ok(!r.stderr.includes(other.password), 'the password is never printed');
    // An incremental run reads the watermarks first: refused there, with the same hint.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-schema-nopriv-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    assert.equal((await etl(['sample', '--scale', '100', '--out', dir, '--quiet'])).code, 0);
    const run = await etl(['run', '--source', dir, '--staging', path.join(dir, 'runs'), '--database-url', other.url]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stderr, /^error: cannot read etl_watermarks: permission denied .*\[watermarks_unavailable\]\nhint: the PostgreSQL user lacks a privilege etl needs/m);
  });

  test('a PostgreSQL user that may not create in the schema (PostgreSQL 15+: public is no longer open to all), on a new database: what to grant, nothing created', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const other = await roleUrl(t, url, 'nocreate');
    const r = await etl(['schema', '--yes', '--database-url', other.url]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^error: .*permission denied for schema public \[schema_create_failed\]/m);
    assert.match(r.stderr, /^hint: the PostgreSQL user lacks a privilege etl needs: .*CREATE on the schema/m);
    assert.ok(!r.stderr.includes(other.password), 'the password is never printed');
    let created = -1;
    await withClient(url, async (c) => {
      created = (await c.query(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'`)).rows[0].n;
    });
    assert.equal(created, 0, 'nothing created');
  });

  test('on a terminal it asks "Apply these schema updates? (yes/no)": no leaves the database as it was (exit 1), yes applies', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    assert.equal((await etl(['schema', '--database-url', url])).code, 0);
    await withClient(url, (c) => c.query('ALTER TABLE users DROP COLUMN phone'));
    const no = await onTerminal(['schema'], url, 'no\n');
    assert.equal(no.code, 1, no.output);
    assert.match(no.output, /apply {4}users: column "users"\."phone" is missing/);
    assert.match(no.output, /Apply these schema updates\? \(yes\/no\)/);
    assert.match(no.output, /nothing applied/);
    assert.equal((await etl(['schema', '--check', '--database-url', url])).code, 1, 'still missing');
    const yes = await onTerminal(['schema'], url, 'yes\n');
    assert.equal(yes.code, 0, yes.output);
    assert.match(yes.output, /1 change\(s\) applied to existing tables/);
    assert.equal((await etl(['schema', '--check', '--database-url', url])).code, 0, 'applied');
  });

  test('--dry-run prints the DDL without connecting', async () => {
    const r = await etl(['schema', '--dry-run', '--database-url', 'postgresql://nobody:secret@127.0.0.1:1/none']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^CREATE TABLE IF NOT EXISTS "ingredients" \(/);
    assert.match(r.stdout, /CONSTRAINT "users_company_id_fkey" FOREIGN KEY \("company_id"\) REFERENCES "companies" \("id"\)/);
    assert.match(r.stdout, /CREATE TABLE IF NOT EXISTS "etl_runs"/);
    assert.equal((r.stdout.match(/^CREATE TABLE/gm) ?? []).length, 38, "31 tables, etl_watermarks, etl_runs, etl_pending, etl_claims, etl_gone and the contributions of the 2 dedupe tables");
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
