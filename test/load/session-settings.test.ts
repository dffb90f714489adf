// A database whose defaults are not PostgreSQL's (ALTER DATABASE … SET DateStyle = 'SQL, DMY' and
// TimeZone = 'Asia/Tokyo', as a team that reads dates the European way may set them; statement and
// idle-in-transaction timeouts meant for the application's queries) must change nothing etl does:
// every etl session sets its own. Before, pg parsed the state tables' timestamps it could not read as
// null: the second run's load and etl status failed with an internal error ("Cannot read properties
// of null"); and the timeouts killed the load.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { etl, REPO, useSampleDump } from '../harness/cli.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';

const servers = useServers({ mongo: false });
const PIPELINE = path.join(REPO, 'pipeline.yaml');

const sample = useSampleDump('etl-session-settings-', 400);

/** Runs `fn` on a client of `url` whose session shows dates as ISO in UTC, whatever the database's defaults. */
async function withIsoSession<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0`);
    // PostgreSQL 17's transaction_timeout (unknown before).
    await client.query(`SELECT set_config('transaction_timeout', '0', false) WHERE current_setting('transaction_timeout', true) IS NOT NULL`);
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** count and md5 of every row of each table, read in the ISO session. */
function tableSums(url: string, tables: readonly string[]): Promise<Record<string, string>> {
  return withIsoSession(url, async (c) => {
    const out: Record<string, string> = {};
    for (const t of tables) {
      const r = await c.query(`SELECT count(*)::int AS n, coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS h FROM ${pg.escapeIdentifier(t)} AS x`);
      out[t] = `${r.rows[0].n}:${r.rows[0].h}`;
    }
    return out;
  });
}

async function runTwice(url: string, staging: string): Promise<void> {
  const env = { DATABASE_URL: url };
  const args = ['--staging', staging, '--pipeline', PIPELINE];
  const schema = await etl(['schema', '--yes', '--pipeline', PIPELINE], { cwd: sample.work, env });
  assert.equal(schema.code, 0, schema.stderr);
  for (const mode of [['--full'], []]) {
    const r = await etl(['run', '--source', sample.dump, ...mode, ...args], { cwd: sample.work, env });
    assert.equal(r.code, 0, `etl run ${mode.join(' ')}: ${r.stderr}`);
  }
}

test("a database whose DateStyle, TimeZone and timeouts (statement, idle in transaction, transaction) are not the defaults: two runs and etl status work, and the tables equal a default database's", async () => {
  const odd = await servers.postgres.createDatabase('session settings odd');
  const plain = await servers.postgres.createDatabase('session settings plain');
  const name = decodeURIComponent(new URL(odd).pathname.slice(1));
  await withIsoSession(plain, async (c) => {
    // 20 ms: far longer than one of etl's setup statements (at 1 ms, a SET at connection time on a
    // busy machine was killed now and then), far shorter than a load's transaction and its waits.
    const settings = [`DateStyle = 'SQL, DMY'`, `TimeZone = 'Asia/Tokyo'`, `statement_timeout = '20ms'`, `idle_in_transaction_session_timeout = '20ms'`];
    // PostgreSQL 17 ends a session whose transaction lasts longer (before, the load's: "Client has encountered a connection error").
    if (Number((await c.query(`SELECT current_setting('server_version_num') AS v`)).rows[0].v) >= 170000) settings.push(`transaction_timeout = '20ms'`);
    for (const setting of settings) await c.query(`ALTER DATABASE ${pg.escapeIdentifier(name)} SET ${setting}`);
  });
  await runTwice(odd, path.join(sample.work, 'odd'));
  await runTwice(plain, path.join(sample.work, 'plain'));

  const status = await etl(['status', '--staging', path.join(sample.work, 'odd'), '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: odd } });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^users +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /m, 'watermarks shown as ISO instants');

  const model = await loadPipeline(PIPELINE);
  const tables = [...model.loadOrder];
  assert.deepEqual(await tableSums(odd, tables), await tableSums(plain, tables));
  const watermarks = (url: string) => withIsoSession(url, async (c) => (await c.query(`SELECT table_name, watermark::text AS w FROM etl_watermarks ORDER BY 1`)).rows);
  assert.deepEqual(await watermarks(odd), await watermarks(plain), 'the same watermarks: both runs read the same dump');
});
