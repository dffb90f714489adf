// The load's exact-mirror rules on staged runs written by hand (the fixture model of model-fixture.ts):
// dedupe rows recomputed from every document of their key, rows leaving with the documents that no
// longer yield them, complete reads, and rows held back for a missing reference (etl_pending) that
// land as soon as the referenced row exists — each checked as rows in PostgreSQL and as figures.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { runLoad, type LoadReport } from '../../load/index.ts';
import { renderPending, runStatus } from '../../inspect/status.ts';
import { freshDatabaseAndStaging, stageRun, type StagedTable } from './staged-run.ts';
import { chainModel, fixtureModel, postgresConfig, query, ts } from './model-fixture.ts';

const servers = useServers({ mongo: false });
const model = fixtureModel();

async function setup(t: { name: string; after(fn: () => unknown): void }) {
  const { url, staging } = await freshDatabaseAndStaging(servers, t, 'mirror');
  const load = async (data: Record<string, StagedTable>): Promise<LoadReport> => {
    await stageRun(staging, model, data);
    return runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  };
  return { url, load, staging };
}

const company = (id: string, day = '1') => [id, ts(`${day} 10:00:00`), ts(`${day} 10:00:00`), `C${id}`.slice(0, 5)];
const user = (id: string, companyId: string | null, day = '1') => [id, ts(`${day} 10:00:00`), ts(`${day} 10:00:00`), id, companyId, null];
const table = (r: LoadReport, name: string) => {
  const found = r.tables.find((x) => x.table === name);
  if (found) return found;
  const settled = r.settled.find((x) => x.table === name);
  assert.ok(settled, `${name} is in the report`);
  return { ...settled, staged: 0, inserted: 0, updated: 0, unchanged: 0, rejected: 0, duplicates: 0 };
};

test('dedupe: a document that moves to another key takes its share of the rollup with it', async (t) => {
  const { url, load } = await setup(t);
  await load({ companies: { rows: [company('c1')] }, users: { rows: [user('u1', 'c1')] } });
  // Two documents for (u1, 7 March): A is the latest.
  await load({
    logbook: {
      rows: [
        ['u1', '2024-03-07', ts('7 08:00:00'), ts('7 12:00:00')],
        ['u1', '2024-03-07', ts('7 08:00:00'), ts('7 09:00:00')],
      ],
      docs: ['A', 'B'],
    },
  });
  const rows = () => query(url, `SELECT user_id, day::text, updated_at::text AS u FROM logbook ORDER BY 1, 2`);
  assert.deepEqual(await rows(), [{ user_id: 'u1', day: '2024-03-07', u: '2024-03-07 12:00:00' }]);

  // A's day is corrected to 8 March: the 7th now carries B's timestamps, the 8th A's.
  const moved = await load({ logbook: { rows: [['u1', '2024-03-08', ts('7 08:00:00'), ts('9 10:00:00')]], docs: ['A'] } });
  assert.deepEqual(await rows(), [
    { user_id: 'u1', day: '2024-03-07', u: '2024-03-07 09:00:00' },
    { user_id: 'u1', day: '2024-03-08', u: '2024-03-09 10:00:00' },
  ]);
  assert.equal(table(moved, 'logbook').updated, 1);
  assert.equal(table(moved, 'logbook').inserted, 1);

  // B loses its user (transform skips it, but names it in the keys file): the 7th has no document left.
  const lost = await load({ logbook: { rows: [], docs: [], keys: ['B'] } });
  assert.deepEqual(await rows(), [{ user_id: 'u1', day: '2024-03-08', u: '2024-03-09 10:00:00' }]);
  assert.equal(table(lost, 'logbook')!.deleted, 1);
});

test('a document that no longer yields its row takes the row with it, and the rows referencing it follow', async (t) => {
  const { url, load } = await setup(t);
  await load({
    companies: { rows: [company('c1')] },
    users: { rows: [user('u1', 'c1'), user('u2', 'c1')] },
    messages: { rows: [['m1', ts('1 10:00:00'), ts('1 10:00:00'), 'u1', 'u2', 'hi']] },
    user_companies: { rows: [['u2', 'c1', ts('1 10:00:00'), ts('1 10:00:00')]] },
  });
  // u2 was read again but yields no row (it left the table's filter, or a value is now refused).
  const r = await load({ users: { rows: [], keys: ['u2'] } });
  assert.deepEqual(await query(url, `SELECT id FROM users ORDER BY 1`), [{ id: 'u1' }]);
  assert.deepEqual(await query(url, `SELECT id FROM messages`), [], 'm1 referenced u2 (reject): a full run would refuse it');
  assert.deepEqual(await query(url, `SELECT user_id FROM user_companies`), []);
  assert.equal(table(r, 'users')!.deleted, 1);
  assert.equal(table(r, 'messages')!.deleted, 1);
  assert.equal(table(r, 'messages')!.pending.rows, 1, 'm1 waits for u2');

  // u2 comes back: m1 lands again without being staged.
  const back = await load({ users: { rows: [user('u2', 'c1', '2')] } });
  assert.deepEqual(await query(url, `SELECT id, sender_id, receiver_id FROM messages`), [{ id: 'm1', sender_id: 'u1', receiver_id: 'u2' }]);
  assert.equal(table(back, 'messages')!.pending.landed, 1);
  assert.equal(table(back, 'messages')!.pending.rows, 0);
});

test('a row refused for a missing reference lands as soon as the referenced row exists; a NULLed reference is set', async (t) => {
  const { url, load, staging } = await setup(t);
  const first = await load({
    companies: { rows: [company('c1')] },
    users: { rows: [user('u1', 'c1'), user('u3', 'c9')] },
    messages: { rows: [['m2', ts('1 10:00:00'), ts('1 10:00:00'), 'u1', 'u9', 'to u9']] },
  });
  assert.equal(table(first, 'messages')!.rejected, 1);
  assert.deepEqual(table(first, 'messages')!.pending.rows, 1);
  assert.deepEqual(table(first, 'users')!.pending.nulls, 1);
  assert.ok(table(first, 'users')!.pending.since);
  assert.deepEqual(await query(url, `SELECT id, company_id FROM users ORDER BY 1`), [
    { id: 'u1', company_id: 'c1' },
    { id: 'u3', company_id: null },
  ]);
  // etl status says what waits, per table and since when.
  const status = await runStatus({ model, postgres: postgresConfig(url), stagingDir: staging });
  const of = (name: string) => status.tables.find((x) => x.table === name)!.pending;
  assert.deepEqual([of('messages').rows, of('messages').nulls, of('users').rows, of('users').nulls], [1, 0, 0, 1]);
  const lines = renderPending(status.tables);
  assert.match(lines.join('\n'), /users: 1 reference\(s\) NULL, since \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  assert.match(lines.join('\n'), /messages: 1 row\(s\) held back/);
  assert.ok(lines.every((l) => l.length <= 100));

  // Neither users nor messages is staged again: only the referenced rows arrive.
  const second = await load({ companies: { rows: [company('c9')] }, users: { rows: [user('u9', null)], keys: ['u9'] } });
  assert.deepEqual(await query(url, `SELECT id, company_id FROM users ORDER BY 1`), [
    { id: 'u1', company_id: 'c1' },
    { id: 'u3', company_id: 'c9' },
    { id: 'u9', company_id: null },
  ]);
  assert.deepEqual(await query(url, `SELECT id FROM messages`), [{ id: 'm2' }]);
  assert.equal(table(second, 'users')!.pending.resolved, 1);
  assert.equal(table(second, 'messages')!.pending.landed, 1);
  assert.deepEqual(await query(url, `SELECT count(*)::int AS n FROM etl_pending`), [{ n: 0 }]);
});

test('a pending row whose document is staged again is replaced by what that run finds', async (t) => {
  const { url, load } = await setup(t);
  await load({ users: { rows: [user('u1', null)] }, messages: { rows: [['m2', ts('1 10:00:00'), ts('1 10:00:00'), 'u1', 'u9', 'old']] } });
  // m2 now points at u1 twice: it lands at once, and the entry for u9 is gone.
  await load({ messages: { rows: [['m2', ts('1 10:00:00'), ts('2 10:00:00'), 'u1', 'u1', 'new']] } });
  assert.deepEqual(await query(url, `SELECT id, content FROM messages`), [{ id: 'm2', content: 'new' }]);
  assert.deepEqual(await query(url, `SELECT count(*)::int AS n FROM etl_pending`), [{ n: 0 }]);
  // u9 arriving later changes nothing more.
  await load({ users: { rows: [user('u9', null)] } });
  assert.deepEqual(await query(url, `SELECT id, receiver_id FROM messages`), [{ id: 'm2', receiver_id: 'u1' }]);
});

test('a complete read removes every row it did not stage; references to them are NULLed and wait', async (t) => {
  const { url, load } = await setup(t);
  await load({ companies: { rows: [company('c1'), company('c2')] }, users: { rows: [user('u1', 'c2')] } });
  const r = await load({ companies: { rows: [company('c1')], complete: true } });
  assert.deepEqual(await query(url, `SELECT id FROM companies`), [{ id: 'c1' }]);
  assert.deepEqual(await query(url, `SELECT id, company_id FROM users`), [{ id: 'u1', company_id: null }]);
  assert.equal(table(r, 'companies')!.deleted, 1);
  assert.equal(table(r, 'users')!.pending.nulls, 1);
  await load({ companies: { rows: [company('c2', '3')] } });
  assert.deepEqual(await query(url, `SELECT id, company_id FROM users`), [{ id: 'u1', company_id: 'c2' }]);
});

test('references NULLed because the row they point at left are counted (orphaned), also in a table the run staged and without delete propagation', async (t) => {
  const { url, load } = await setup(t);
  await load({ companies: { rows: [company('c1'), company('c2')] }, users: { rows: [user('u1', 'c1'), user('u2', 'c2')] } });
  // c1 was read again but yields no row; users is staged too (u2 edited), so its figures are the
  // staged table's: u2 updated, u1's company_id NULLed after c1 left (its row changed: it counts;
  // not in the rejects file, which lists the staged rows).
  const r = await load({ companies: { rows: [], keys: ['c1'] }, users: { rows: [user('u2', 'c2', '2')] } });
  assert.deepEqual(await query(url, `SELECT id, company_id FROM users ORDER BY 1`), [{ id: 'u1', company_id: null }, { id: 'u2', company_id: 'c2' }]);
  assert.equal(r.deletions, null, 'no delete propagation');
  const users = r.tables.find((x) => x.table === 'users')!;
  assert.deepEqual({ updated: users.updated, nulled: users.nulled, orphaned: users.orphaned, pending: users.pending.nulls }, { updated: 1, nulled: 0, orphaned: 1, pending: 1 });
  assert.equal(r.tables.find((x) => x.table === 'companies')!.deleted, 1);
});

test('a pending row that lands with a reference set NULL (its row is still missing) counts as landed', async (t) => {
  const { url, staging } = await freshDatabaseAndStaging(servers, t, 'landed');
  const chain = chainModel({ meals: true, mealsPlan: true });
  const load = async (data: Record<string, StagedTable>): Promise<LoadReport> => {
    await stageRun(staging, chain, data);
    return runLoad({ model: chain, stagingDir: staging, postgres: postgresConfig(url) });
  };
  const at = ts('1 10:00:00');
  // m1's day d1 is missing (reject: held back) and so is its plan p9 (set_null).
  await load({ plans: { rows: [['p1', at, at]] }, meals: { rows: [['m1', at, at, 'd1', 'p9']] } });
  assert.deepEqual(await query(url, `SELECT id FROM meals`), []);
  // d1 arrives: m1 lands, its plan_id NULL and kept pending for p9.
  const r = await load({ days: { rows: [['d1', at, at, 'p1']] } });
  assert.deepEqual(await query(url, `SELECT id, day_id, plan_id FROM meals`), [{ id: 'm1', day_id: 'd1', plan_id: null }]);
  const meals = r.settled.find((x) => x.table === 'meals');
  assert.deepEqual(meals && { landed: meals.pending.landed, rows: meals.pending.rows, nulls: meals.pending.nulls }, { landed: 1, rows: 0, nulls: 1 });
});

test('two documents whose _ids convert to one key are both refused, in one run or across runs; a complete read settles it', async (t) => {
  const { url, load, staging } = await setup(t);
  const hex = '65f0000000000000000000aa';
  // One run: Int32 77 and "77" both convert to 77.
  const first = await load({
    companies: { rows: [company('c1')] },
    users: { rows: [user('77', 'c1'), user('77', 'c1', '2'), user(hex, 'c1')], keys: ['77', '77', hex], identities: ['{"$numberInt":"77"}', '"77"', null] },
    messages: { rows: [['m1', ts('1 10:00:00'), ts('1 10:00:00'), hex, '77', 'to 77']] },
  });
  assert.deepEqual(await query(url, `SELECT id FROM users ORDER BY 1`), [{ id: hex }], 'neither 77 wins');
  assert.equal(table(first, 'users').rejected, 2);
  const rejects = (await readFile(path.join(staging, first.runId, 'load', 'users.rejects.ndjson'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(
    rejects.map((r) => [r.line, r.column, r.value, r.reason, r.documents]),
    [
      [2, 'id', '77', 'duplicate_key', ['"77"', '{"$numberInt":"77"}']],
      [3, 'id', '77', 'duplicate_key', ['"77"', '{"$numberInt":"77"}']],
    ],
  );
  assert.deepEqual(await query(url, `SELECT id FROM messages`), [], 'm1 references 77, which has no row');

  // A later run: the string of the ObjectId's hex arrives; the ObjectId's row leaves, neither wins.
  const second = await load({ users: { rows: [user(hex, 'c1', '3')], keys: [hex], identities: [`"${hex}"`] } });
  assert.deepEqual(await query(url, `SELECT id FROM users ORDER BY 1`), []);
  assert.equal(table(second, 'users').rejected, 1);
  assert.equal(table(second, 'users').deleted, 1);

  // A complete read that finds only the ObjectId: its row is back; 77 is still contested by both.
  await load({ users: { rows: [user(hex, 'c1', '4')], keys: [hex], identities: [null], complete: true } });
  assert.deepEqual(await query(url, `SELECT id FROM users ORDER BY 1`), [{ id: hex }]);
});

test('an incremental read that asked for both claimants of a contested key and found one ends the contest: its row lands, the other claim goes', async (t) => {
  const { url, load } = await setup(t);
  await load({
    companies: { rows: [company('c1')] },
    users: { rows: [user('77', 'c1'), user('77', 'c1', '2')], keys: ['77', '77'], identities: ['{"$numberInt":"77"}', '"77"'] },
  });
  assert.deepEqual(await query(url, `SELECT id FROM users`), [], 'neither 77 wins');
  // The string "77" was deleted: the extract asked for both claimants and found the Int32 alone
  // (not edited, it is read only because it claims a contested key).
  const r = await load({ users: { rows: [user('77', 'c1', '3')], keys: ['77'], identities: ['{"$numberInt":"77"}'], claimants: ['"77"', '{"$numberInt":"77"}'] } });
  assert.deepEqual(await query(url, `SELECT id, updated_at::text AS u FROM users`), [{ id: '77', u: '2024-03-03 10:00:00' }], 'the Int32 77 lands');
  assert.equal(table(r, 'users').rejected, 0);
  assert.deepEqual(await query(url, `SELECT key, identity FROM etl_claims WHERE table_name = 'users' ORDER BY 2`), [{ key: '77', identity: '{"$numberInt":"77"}' }], 'the claim of the gone "77" is forgotten');
  // A claimant asked for and found keeps its claim: a new twin contests the key again.
  await load({ users: { rows: [user('77', 'c1', '4')], keys: ['77'], identities: ['"77"'] } });
  assert.deepEqual(await query(url, `SELECT id FROM users`), [], 'a new "77" contests it again');
});
