// The three strategies on crafted documents, with the project's pipeline.yaml: CSV bytes, keys,
// rejects, and the manifest's counts (which must reconcile).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { Int32, ObjectId } from 'bson';
import type { PipelineModel } from '../../model/types.ts';
import { readManifest } from '../../staging/manifest.ts';
import { transformIdentityErrors } from '../../staging/manifest-transform.ts';
import { runTransform } from '../../transform/index.ts';
import { pipelineModel, readText, stageRun, type Extract, removeStagedRuns } from './staged-run.ts';

after(removeStagedRuns);

const id = (n: number) => new ObjectId(`65f0000000000000000000${n.toString(16).padStart(2, '0')}`);
const hex = (n: number) => id(n).toHexString();
const d = (iso: string) => new Date(iso);
const CREATED = d('2024-01-01T10:00:00Z');
const UPDATED = d('2024-02-01T10:00:00Z');
const base = (n: number) => ({ _id: id(n), creation_date: CREATED, update_date: UPDATED, __v: new Int32(0) });

const U1 = 1;
const U2 = 2;
const U3 = 3;
const U4 = 4;
const E1 = 0x11;
const E2 = 0x12;
const E3 = 0x13;
const T1 = 0x21;
const T2 = 0x22;

const EXTRACT: Extract = {
  users: [
    {
      ...base(U1),
      firstname: 'Jean',
      lastname: '',
      email: 'jean@example.fr',
      role: 'CUSTOMER',
      birthday: d('1980-03-06T23:00:00Z'),
      company: id(0x31),
      registered_events: [
        id(E1), // a plain id (older documents)
        { _id: id(0x51), event: id(E2), date: d('2024-01-15T08:30:00Z') }, // current shape: its own date
        id(E1), // the same event again: one row
        { _id: id(0x52), event: id(E3) }, // a subdocument without a date: the parent's dates
        { _id: id(0x53) }, // no id: rejected
        null, // rejected
      ],
      targets: [id(T1)],
      specificity_targets: [id(T1), id(T2), id(T2)],
      health_targets: [],
    },
    // Arrays emptied or gone: the parent is still in the keys files, so load drops its old links.
    { ...base(U2), firstname: 'Ann', lastname: 'B', email: 'ann@example.fr', role: 'RH', registered_events: [] },
    // Refused by users (too long), its links still go on.
    { ...base(U3), firstname: 'x'.repeat(256), lastname: 'C', email: 'c@example.fr', role: 'DIET', registered_events: [id(E1)], health_targets: [id(T2)] },
    // Not an array: the whole document is refused by user_events; it names itself in the keys, so its links go.
    { ...base(U4), firstname: 'D', lastname: 'D', email: 'd@example.fr', role: 'ADMIN', registered_events: 'oops', specificity_targets: [id(T1)] },
  ],
  events: [
    { ...base(E1), name: 'Menu de printemps', __t: 'menu', start_date: d('2024-03-01T00:00:00Z'), end_date: d('2024-03-31T00:00:00Z') },
    { ...base(E2), name: 'Webinar, "nutrition"', __t: 'webinar', start_date: d('2024-03-01T18:00:00Z'), end_date: d('2024-03-01T19:00:00Z'), companies: [id(0x31)] },
    { ...base(E3), name: 'Défi', __t: 'collectiveChallenge', start_date: d('2024-04-01T00:00:00Z'), end_date: d('2024-04-30T00:00:00Z'), company: id(0x31) },
  ],
  coachinglogbooks: [
    { _id: id(0x71), user: id(U1), day: d('2024-03-06T23:00:00Z'), creation_date: CREATED, update_date: d('2024-03-08T17:00:00Z') },
    { _id: id(0x72), user: id(U1), day: d('2024-03-06T23:00:00Z'), creation_date: CREATED, update_date: d('2024-03-09T17:00:00Z') },
    // Same latest update_date as 0x72: the greater _id wins.
    { _id: id(0x73), user: id(U1), day: d('2024-03-06T23:00:00Z'), creation_date: d('2024-01-02T00:00:00Z'), update_date: d('2024-03-09T17:00:00Z') },
    // Older than 0x72/0x73, later in the file: never wins.
    { _id: id(0x74), user: id(U1), day: d('2024-03-06T23:00:00Z'), creation_date: CREATED, update_date: d('2024-03-07T17:00:00Z') },
    { _id: id(0x75), coaching: id(0x99), day: d('2024-03-06T23:00:00Z'), creation_date: CREATED, update_date: UPDATED }, // no user
    { _id: id(0x76), user: null, day: d('2024-03-06T23:00:00Z'), creation_date: CREATED, update_date: UPDATED }, // null user
    { _id: id(0x77), user: id(U1), creation_date: CREATED, update_date: UPDATED }, // no day
    { _id: id(0x78), user: id(U1), day: d('2024-07-14T22:00:00Z'), creation_date: CREATED, update_date: UPDATED },
    { _id: id(0x79), user: id(U2), day: d('2024-03-06T23:00:00Z'), creation_date: CREATED, update_date: UPDATED },
    { _id: id(0x7a), user: id(U2), day: d('2024-03-07T23:00:00Z'), creation_date: CREATED, update_date: null }, // rejected
  ],
};

let model: PipelineModel;
let stagingDir: string;
let runDir: string;

before(async () => {
  model = await pipelineModel();
  const run = await stageRun(model, EXTRACT);
  stagingDir = run.stagingDir;
  runDir = run.paths.dir;
  await runTransform({ model, stagingDir });
});

const file = (name: string) => readText(`${runDir}/transform/${name}`);
const rejects = async (table: string) =>
  (await file(`${table}.rejects.ndjson`))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('upsert', () => {
  test('users: one row a document, NULL apart from "", dates in UTC and the Paris day', async () => {
    assert.equal(
      await file('users.csv'),
      [
        'id,created_at,updated_at,firstname,lastname,email,insurer,phone,population,sso_id,birthdate,company_id,role',
        `${hex(U1)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000,Jean,"",jean@example.fr,,,,,1980-03-07,${hex(0x31)},CUSTOMER`,
        `${hex(U2)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000,Ann,B,ann@example.fr,,,,,,,RH`,
        `${hex(U4)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000,D,D,d@example.fr,,,,,,,ADMIN`,
        '',
      ].join('\n'),
    );
    const [r, ...more] = await rejects('users');
    assert.equal(more.length, 0);
    assert.deepEqual(Object.keys(r!), ['collection', '_id', 'table', 'column', 'value', 'reason']);
    assert.equal(r!.collection, 'users');
    assert.equal(r!._id, hex(U3));
    assert.equal(r!.table, 'users');
    assert.equal(r!.column, 'firstname');
    assert.equal(r!.reason, 'too_long');
    // The value in the rejects file is its EJSON text, shortened.
    assert.equal(r!.value, `"${'x'.repeat(199)}…`);
  });

  test('menus: the events whose __t is menu, the others counted as filtered', async () => {
    assert.equal(await file('menus.csv'), `id,created_at,updated_at,name\n${hex(E1)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000,Menu de printemps\n`);
    assert.equal(
      await file('events.csv'),
      [
        'id,created_at,updated_at,name,type,start_date,end_date,company_id',
        `${hex(E1)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000,Menu de printemps,menu,2024-03-01 00:00:00.000,2024-03-31 00:00:00.000,`,
        `${hex(E2)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000,"Webinar, ""nutrition""",webinar,2024-03-01 18:00:00.000,2024-03-01 19:00:00.000,`,
        `${hex(E3)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000,Défi,collectiveChallenge,2024-04-01 00:00:00.000,2024-04-30 00:00:00.000,${hex(0x31)}`,
        '',
      ].join('\n'),
    );
    const m = await readManifest({ manifest: `${runDir}/manifest.json`, runId: 'x' } as never);
    const menus = m.stages.transform!.tables.menus!;
    assert.deepEqual([menus.documents, menus.rows, menus.rejected, menus.skipped], [3, 1, 0, { filtered: 2 }]);
  });
});

describe('explode', () => {
  test('user_events: mixed id forms, an item date, a repeat, items without id, an emptied array', async () => {
    assert.equal(
      await file('user_events.csv'),
      [
        'user_id,event_id,created_at,updated_at',
        `${hex(U1)},${hex(E1)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        // The subdocument's own date feeds both timestamps.
        `${hex(U1)},${hex(E2)},2024-01-15 08:30:00.000,2024-01-15 08:30:00.000`,
        `${hex(U1)},${hex(E3)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        `${hex(U3)},${hex(E1)},2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        '',
      ].join('\n'),
    );
    // Every document offered: U2 (emptied array) and U4 (refused whole: a full run gives it no link) included.
    // Beside each key, the document's _id when it is not the key's own text (an ObjectId's is: empty).
    assert.equal(await file('user_events.keys.csv'), `user_id,_id\n${hex(U1)},\n${hex(U2)},\n${hex(U3)},\n${hex(U4)},\n`);
    const r = await rejects('user_events');
    assert.deepEqual(
      r.map((x) => [x._id, x.column, x.reason, x.value]),
      [
        [hex(U1), 'event_id', 'missing_item_id', `{"_id":{"$oid":"${hex(0x53)}"}}`],
        [hex(U1), 'event_id', 'missing_item_id', 'null'],
        [hex(U4), 'event_id', 'not_an_array', '"oops"'],
      ],
    );
  });

  test('users_targets: three arrays, one constant each, a repeat inside one array only', async () => {
    assert.equal(
      await file('users_targets.csv'),
      [
        'user_id,target_id,type,created_at,updated_at',
        `${hex(U1)},${hex(T1)},basic,2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        // The same target in another array is another row (type differs).
        `${hex(U1)},${hex(T1)},specificity,2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        `${hex(U1)},${hex(T2)},specificity,2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        `${hex(U3)},${hex(T2)},health,2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        `${hex(U4)},${hex(T1)},specificity,2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        '',
      ].join('\n'),
    );
    // U2 has none of the three arrays: still a parent, so its old links go.
    assert.equal(await file('users_targets.keys.csv'), `user_id,_id\n${hex(U1)},\n${hex(U2)},\n${hex(U3)},\n${hex(U4)},\n`);
    assert.equal(await file('users_targets.rejects.ndjson'), '');
  });

  test('the manifest counts parents, items and skips, and they reconcile', async () => {
    const m = await readManifest({ manifest: `${runDir}/manifest.json`, runId: 'x' } as never);
    const ue = m.stages.transform!.tables.user_events!;
    assert.equal(ue.documents, 4);
    assert.equal(ue.rows, 4);
    assert.equal(ue.rejected, 3);
    assert.deepEqual(ue.skipped, { duplicate_in_array: 1 });
    assert.deepEqual(ue.explode, { parents: 3, items: 7, rejected_documents: 1, rejected_items: 2, skipped_documents: {}, skipped_items: { duplicate_in_array: 1 } });
    assert.equal(ue.keys!.records, 4, 'every document offered names itself in the keys file');
    assert.equal(ue.unkeyed, 0);
    const ut = m.stages.transform!.tables.users_targets!;
    assert.deepEqual(ut.explode, { parents: 4, items: 6, rejected_documents: 0, rejected_items: 0, skipped_documents: {}, skipped_items: { duplicate_in_array: 1 } });
    for (const [name, record] of Object.entries(m.stages.transform!.tables)) assert.deepEqual(transformIdentityErrors(name, record), [], name);
  });
});

describe('dedupe', () => {
  test('users_logbook: one row per (user, day), the latest document wins, ties by greatest _id', async () => {
    assert.equal(
      await file('users_logbook.csv'),
      [
        'user_id,day,created_at,updated_at',
        `${hex(U1)},2024-03-07,2024-01-02 00:00:00.000,2024-03-09 17:00:00.000`,
        `${hex(U1)},2024-07-15,2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        `${hex(U2)},2024-03-07,2024-01-01 10:00:00.000,2024-02-01 10:00:00.000`,
        '',
      ].join('\n'),
    );
    const m = await readManifest({ manifest: `${runDir}/manifest.json`, runId: 'x' } as never);
    const t = m.stages.transform!.tables.users_logbook!;
    assert.equal(t.documents, 10);
    assert.equal(t.rows, 3);
    assert.equal(t.rejected, 1);
    assert.deepEqual(t.skipped, { missing_day: 1, missing_user: 2, superseded: 3 });
    // The keys file names every document offered; the contributions every document that yields a row.
    assert.equal(t.keys!.records, 10);
    assert.equal(t.contrib!.records, t.rows + 3, 'the winners and the superseded documents');
    const contributions = (await file('users_logbook.contrib.csv')).split('\n');
    assert.equal(contributions[0], '_id,user_id,day,created_at,updated_at');
    assert.equal(contributions.length - 2, 6);
    const [r] = await rejects('users_logbook');
    assert.deepEqual([r!._id, r!.column, r!.reason, r!.value], [hex(0x7a), 'updated_at', 'null_in_not_null', 'null']);
  });

  test('the winner does not depend on the order of the extract', async () => {
    const reversed = { coachinglogbooks: [...EXTRACT.coachinglogbooks!].reverse() };
    const run = await stageRun(model, reversed);
    await runTransform({ model, stagingDir: run.stagingDir });
    assert.equal(await readText(run.paths.transformCsv('users_logbook')), await file('users_logbook.csv'));
  });
});

describe('determinism', () => {
  test('the same extract gives byte-identical files, and the manifest holds their sha256', async () => {
    const m1 = await readManifest({ manifest: `${runDir}/manifest.json`, runId: 'x' } as never);
    const again = await stageRun(model, EXTRACT);
    await runTransform({ model, stagingDir: again.stagingDir });
    const m2 = await readManifest(again.paths);
    for (const [name, r1] of Object.entries(m1.stages.transform!.tables)) {
      const r2 = m2.stages.transform!.tables[name]!;
      assert.equal(r2.csv.sha256, r1.csv.sha256, name);
      assert.equal(r2.rejects.sha256, r1.rejects.sha256, name);
      assert.equal(r2.keys?.sha256, r1.keys?.sha256, name);
      const bytes = await readFile(`${again.paths.dir}/${r2.csv.file}`);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), r2.csv.sha256, name);
      assert.equal(bytes.length, r2.csv.bytes, name);
    }
  });
});
