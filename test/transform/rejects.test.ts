// Each rejection reason end to end: the document's row goes to the rejects file with its column,
// value and reason; the other documents' rows are written; the counts reconcile.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, test } from 'node:test';
import { Double, Int32, ObjectId } from 'bson';
import { readManifest } from '../../staging/manifest.ts';
import { transformIdentityErrors } from '../../staging/manifest-transform.ts';
import { runTransform } from '../../transform/index.ts';
import { PIPELINE_FILE, pipelineModel, readText, stageRun, removeStagedRuns } from './staged-run.ts';

after(removeStagedRuns);

const PIPELINE = `
settings:
  timezone: Europe/Paris
tables:
  things:
    include_base: true
    additional_columns:
      - name: code
        sql_type: VARCHAR(5)
      - name: order
        sql_type: SMALLINT
      - name: flag
        sql_type: BOOLEAN
      - name: day
        sql_type: DATE
      - name: seen_at
        sql_type: TIMESTAMP
      - name: label
        sql_type: TEXT
        nullable: false
    export_order: 1
`;

test('one document per reason, and the good ones around them', async () => {
  const model = await pipelineModel(PIPELINE);
  const at = new Date('2024-03-06T23:00:00Z');
  const oid = (n: number) => new ObjectId(`680000000000000000000${n.toString(16).padStart(3, '0')}`);
  const doc = (n: number, fields: Record<string, unknown>) => ({ _id: oid(n), creation_date: at, update_date: at, label: `L${n}`, ...fields });
  const docs = [
    doc(1, { code: 'ok' }),
    doc(2, { code: 'toolong' }), // too_long
    doc(3, { code: { nested: true } }), // not_a_string
    doc(4, { order: new Int32(40000) }), // out_of_range
    doc(5, { order: new Double(1.5) }), // not_an_integer
    doc(6, { order: new Double(Number.NaN) }), // not_finite
    doc(7, { flag: 'true' }), // not_a_boolean
    doc(8, { day: '2024-03-07' }), // not_a_date
    doc(9, { seen_at: new Date(Date.UTC(10000, 0, 1)) }), // date_out_of_range
    doc(10, { label: null }), // null_in_not_null
    doc(11, { label: 'a\u0000b' }), // nul_character
    doc(12, { code: '', order: new Int32(-1), flag: false, day: at, seen_at: at }),
    // Written by hand: a $date that is not a date.
    `{"_id":{"$oid":"${oid(13).toHexString()}"},"creation_date":{"$date":{"$numberLong":"1709766000000"}},"update_date":{"$date":{"$numberLong":"99999999999999999"}},"label":"x"}`,
  ];
  const run = await stageRun(model, { things: docs });
  await runTransform({ model, stagingDir: run.stagingDir });
  const lines = (await readText(run.paths.transformRejects('things'))).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => [l._id, l.column, l.reason, l.value]),
    [
      [oid(2).toHexString(), 'code', 'too_long', '"toolong"'],
      [oid(3).toHexString(), 'code', 'not_a_string', '{"nested":true}'],
      [oid(4).toHexString(), 'order', 'out_of_range', '{"$numberInt":"40000"}'],
      [oid(5).toHexString(), 'order', 'not_an_integer', '{"$numberDouble":"1.5"}'],
      [oid(6).toHexString(), 'order', 'not_finite', '{"$numberDouble":"NaN"}'],
      [oid(7).toHexString(), 'flag', 'not_a_boolean', '"true"'],
      [oid(8).toHexString(), 'day', 'not_a_date', '"2024-03-07"'],
      [oid(9).toHexString(), 'seen_at', 'date_out_of_range', '{"$date":{"$numberLong":"253402300800000"}}'],
      [oid(10).toHexString(), 'label', 'null_in_not_null', 'null'],
      [oid(11).toHexString(), 'label', 'nul_character', '"a\\u0000b"'],
      [oid(13).toHexString(), 'updated_at', 'invalid_date', '{"$date":{"$numberLong":"99999999999999999"}}'],
    ],
  );
  assert.equal(
    await readText(run.paths.transformCsv('things')),
    [
      'id,created_at,updated_at,code,order,flag,day,seen_at,label',
      `${oid(1).toHexString()},2024-03-06 23:00:00.000,2024-03-06 23:00:00.000,ok,,,,,L1`,
      `${oid(12).toHexString()},2024-03-06 23:00:00.000,2024-03-06 23:00:00.000,"",-1,false,2024-03-07,2024-03-06 23:00:00.000,L12`,
      '',
    ].join('\n'),
  );
  const record = (await readManifest(run.paths)).stages.transform!.tables.things!;
  assert.deepEqual([record.documents, record.rows, record.rejected, record.skipped], [13, 2, 11, {}]);
  assert.deepEqual(transformIdentityErrors('things', record), []);
});

test('NUL stripped under nul_character: strip, counted per column, and VARCHAR(n) checked after', async () => {
  const model = await pipelineModel(PIPELINE.replace('timezone: Europe/Paris', 'timezone: Europe/Paris\n  nul_character: strip'));
  const at = new Date('2024-03-06T23:00:00Z');
  const run = await stageRun(model, {
    things: [
      { _id: new ObjectId('690000000000000000000001'), creation_date: at, update_date: at, code: 'ab\u0000cde', label: '\u0000x\u0000' },
      { _id: new ObjectId('690000000000000000000002'), creation_date: at, update_date: at, code: 'abcdef\u0000', label: 'y' },
    ],
  });
  await runTransform({ model, stagingDir: run.stagingDir });
  assert.equal(
    await readText(run.paths.transformCsv('things')),
    'id,created_at,updated_at,code,order,flag,day,seen_at,label\n690000000000000000000001,2024-03-06 23:00:00.000,2024-03-06 23:00:00.000,abcde,,,,,x\n',
  );
  const record = (await readManifest(run.paths)).stages.transform!.tables.things!;
  // The rejected row's strip is not counted: only values actually written are.
  assert.deepEqual(record.altered, { code: { nul_stripped: 1 }, label: { nul_stripped: 1 } });
  assert.equal(record.rejected, 1);
});

test('dedupe under nul_character: strip: a kept row counts its strips, a superseded one does not, rows sorted by key', async () => {
  const yaml = await readFile(PIPELINE_FILE, 'utf8');
  const model = await pipelineModel(yaml.replace('  nul_character: reject\n', '  nul_character: strip\n'));
  const day = new Date('2024-03-06T23:00:00Z');
  const at = (minute: number): Date => new Date(Date.UTC(2024, 2, 7, 8, minute));
  const log = (n: number, user: string, minute: number) => ({ _id: new ObjectId(`69000000000000000000000${n}`), day, user, creation_date: at(0), update_date: at(minute) });
  const run = await stageRun(model, {
    coachinglogbooks: [
      log(1, 'u\u0000b', 1), // superseded by 2: its strip is not counted
      log(2, 'ub', 2),
      log(3, 'u\u0000a', 1), // alone: counted
      log(4, 'uc', 1),
      log(5, 'u\u0000c', 2), // supersedes 4: counted
    ],
  });
  await runTransform({ model, stagingDir: run.stagingDir, tables: ['users_logbook'] });
  assert.equal(
    await readText(run.paths.transformCsv('users_logbook')),
    [
      'user_id,day,created_at,updated_at',
      'ua,2024-03-07,2024-03-07 08:00:00.000,2024-03-07 08:01:00.000',
      'ub,2024-03-07,2024-03-07 08:00:00.000,2024-03-07 08:02:00.000',
      'uc,2024-03-07,2024-03-07 08:00:00.000,2024-03-07 08:02:00.000',
      '',
    ].join('\n'),
  );
  const record = (await readManifest(run.paths)).stages.transform!.tables.users_logbook!;
  assert.deepEqual(record.altered, { user_id: { nul_stripped: 2 } });
  assert.deepEqual([record.documents, record.rows, record.dedupe?.superseded], [5, 3, 2]);
});
