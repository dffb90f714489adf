// How the watermark, thresholds, force_reimport, --since and --full decide what each collection reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { Long, ObjectId } from 'bson';
import { collectionQuery, needsStoredWatermarks, planCollections, type PlanInput } from '../../extract/watermark-plan.ts';
import { keyIdValues } from '../../staging/document-identity.ts';
import type { PipelineModel } from '../../model/types.ts';
import { tempDir } from '../harness/temp-dir.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The fixture pipeline with events.date_threshold = 2024-02-01 and menus.force_reimport. */
async function model(): Promise<PipelineModel> {
  const text = (await readFile(path.join(HERE, 'fixtures/pipeline.yaml'), 'utf8'))
    .replace("      - name: title\n        sql_type: VARCHAR\n    export_order: 1", "      - name: title\n        sql_type: VARCHAR\n    export_order: 1\n    date_threshold: 2024-02-01")
    .replace('    filter: { __t: menu }', '    filter: { __t: menu }\n    force_reimport: true');
  const dir = await tempDir('etl-plan-');
  await writeFile(path.join(dir, 'pipeline.yaml'), text);
  const m = await loadPipeline(path.join(dir, 'pipeline.yaml'));
  assert.equal(m.tables.get('events')!.dateThreshold?.toISOString(), '2024-02-01T00:00:00.000Z');
  assert.equal(m.tables.get('menus')!.forceReimport, true);
  return m;
}

const D = (s: string) => new Date(`${s}T00:00:00Z`);

function plan(m: PipelineModel, over: Partial<PlanInput>) {
  const input: PlanInput = { model: m, tables: [...m.loadOrder], full: false, since: null, globalDateThreshold: null, stored: new Map(), ...over };
  return Object.fromEntries(planCollections(m.collections, input).map((p) => [p.collection.name, p.from?.toISOString().slice(0, 10) ?? 'full']));
}

test('never loaded → full; stored → from the watermark; a collection takes the earliest of its tables', async () => {
  const m = await model();
  assert.deepEqual(plan(m, {}), { events: '2024-02-01', users: 'full', recipes: 'full', ghosts: 'full' });
  const stored = new Map([
    ['users', D('2024-05-10')],
    ['user_events', D('2024-05-01')],
    ['ghosts', D('2024-06-01')],
    ['menus', D('2024-06-01')],
  ]);
  assert.deepEqual(plan(m, { stored }), { events: '2024-02-01', users: '2024-05-01', recipes: 'full', ghosts: '2024-06-01' });
  // One table of users never loaded: the collection is read in full.
  stored.delete('user_events');
  assert.equal(plan(m, { stored }).users, 'full');
});

test('thresholds as in the original tool: the table threshold replaces the global one; the earlier of watermark and threshold wins', async () => {
  const m = await model();
  const stored = new Map([
    ['events', D('2024-03-01')],
    ['users', D('2024-03-01')],
    ['user_events', D('2024-03-01')],
    ['ghosts', D('2024-01-10')],
  ]);
  const global = D('2024-01-15');
  const p = plan(m, { stored, globalDateThreshold: global });
  // events: own threshold 2024-02-01 (the global one does not apply) < watermark 2024-03-01.
  assert.equal(p.events, '2024-02-01');
  // users: global threshold earlier than the watermark → extends the window back.
  assert.equal(p.users, '2024-01-15');
  // ghosts: watermark earlier than the threshold → the watermark.
  assert.equal(p.ghosts, '2024-01-10');
  // force_reimport bypasses both.
  assert.equal(p.recipes, 'full');
  // No watermark: the threshold alone.
  assert.equal(plan(m, { globalDateThreshold: global }).ghosts, '2024-01-15');
});

test('--full reads everything; --since replaces watermarks and thresholds but not force_reimport', async () => {
  const m = await model();
  const stored = new Map([['users', D('2024-03-01')], ['user_events', D('2024-03-01')]]);
  assert.deepEqual(plan(m, { stored, full: true }), { events: 'full', users: 'full', recipes: 'full', ghosts: 'full' });
  assert.deepEqual(plan(m, { stored, since: D('2023-12-31') }), { events: '2023-12-31', users: '2023-12-31', recipes: 'full', ghosts: '2023-12-31' });
  assert.equal(needsStoredWatermarks(m, ['menus'], false, null), false, 'force_reimport only: PostgreSQL not needed');
  assert.equal(needsStoredWatermarks(m, ['users'], false, null), true);
  assert.equal(needsStoredWatermarks(m, ['users'], true, null), false);
});

test('a full read keeps the server filter; an incremental read drops it and also takes new ObjectIds and undated documents', () => {
  const w = new Date('2024-03-01T00:00:30.900Z');
  const incremental = {
    $or: [
      { creation_date: { $gte: w } },
      { update_date: { $gte: w } },
      // ObjectId time is in whole seconds: the second of the watermark, floored.
      { _id: { $gte: ObjectId.createFromTime(Math.floor(w.getTime() / 1000)) } },
      { $nor: [{ update_date: { $type: 'date' } }] },
    ],
  };
  assert.deepEqual(collectionQuery(null, null), {});
  assert.deepEqual(collectionQuery({ __t: 'menu' }, null), { __t: 'menu' });
  assert.deepEqual(collectionQuery(null, w), incremental);
  // An event whose __t left "menu" must reach transform, so its menus row can leave the table.
  assert.deepEqual(collectionQuery({ __t: 'menu' }, w), incremental);
  assert.equal((incremental.$or[2]!._id!.$gte as ObjectId).toHexString(), '65e11a9e0000000000000000');
  // Before 1970 every ObjectId is minted after: the smallest one.
  assert.equal(((collectionQuery(null, new Date(-5)).$or as { _id?: { $gte: ObjectId } }[])[2]!._id!.$gte).toHexString(), '000000000000000000000000');
});

test('an incremental read asks again for the documents a load found gone (etl_gone), as every _id their key text may be', () => {
  const w = new Date('2024-03-01T00:00:00Z');
  const hexId = '65e11a9e0123456789abcdef';
  const values = ['"77"', hexId, 'abc', '77', '9223372036854775807', '99999999999999999999', '1e400', '007'].map(keyIdValues);
  assert.deepEqual(values, [
    ['"77"'],
    [ObjectId.createFromHexString(hexId), hexId],
    ['abc'],
    [77, '77'],
    [Long.fromString('9223372036854775807'), '9223372036854775807'],
    ['99999999999999999999'],
    ['1e400'],
    ['007'],
  ]);
  const query = collectionQuery(null, w, { claimants: ['"77"'], gone: values[1]! });
  assert.deepEqual((query.$or as Record<string, unknown>[])[4], { _id: { $in: ['77', ObjectId.createFromHexString(hexId), hexId] } }, 'the claimant, then the gone _ids');
  assert.deepEqual(collectionQuery(null, null, { claimants: [], gone: values[1]! }), {}, 'a full read asks for nothing more: it reads every document');
});

test('the documents found gone of a collection are those of every table it feeds, unless it is read in full', async () => {
  const m = await model();
  const w = D('2024-05-10');
  const gone = new Map([['user_events', ['65e11a9e0123456789abcdef', 'b']], ['users', ['a', '65e11a9e0123456789abcdef']]]);
  const plans = (over: Partial<PlanInput>) => planCollections(m.collections, { model: m, tables: ['users', 'user_events'], full: false, since: null, globalDateThreshold: null, stored: new Map([['users', w], ['user_events', w]]), gone, ...over });
  assert.deepEqual(plans({}).find((p) => p.collection.name === 'users')!.gone, ['65e11a9e0123456789abcdef', 'a', 'b']);
  assert.deepEqual(plans({ full: true }).find((p) => p.collection.name === 'users')!.gone, []);
});
