// A table whose mapping changed since its last load is read in full by the next extract, whatever
// its watermark (reason mapping_changed), and makes its collection read in full; tables whose
// mapping did not change stay incremental; a watermark stored without fingerprint (an older etl)
// counts as changed; the manifest records per table the fingerprint planned with and whether the
// read covers the table in full.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { PARTIAL, pipelineFingerprints } from '../../model/fingerprint.ts';
import { mappingRecords, mappingWarnings, planCollections, planWarnings, type PlanInput } from '../../extract/watermark-plan.ts';
import type { PipelineModel } from '../../model/types.ts';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../extract/fixtures/pipeline.yaml');
const D = (s: string) => new Date(`${s}T00:00:00Z`);

/** The extract fixture pipeline, with events.date_threshold = 2024-02-01. */
async function model(t: { after: (fn: () => Promise<void>) => void }): Promise<PipelineModel> {
  const text = (await readFile(FIXTURE, 'utf8')).replace(
    '      - name: title\n        sql_type: VARCHAR\n    export_order: 1',
    '      - name: title\n        sql_type: VARCHAR\n    export_order: 1\n    date_threshold: 2024-02-01',
  );
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-read-plan-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'pipeline.yaml'), text);
  return loadPipeline(path.join(dir, 'pipeline.yaml'));
}

/** Every table loaded on 2024-05-01 with its current fingerprint, then `edit` applied to the stored ones. */
function loadedState(m: PipelineModel, edit: (f: Map<string, string | null>) => void = () => undefined) {
  const stored = new Map(m.loadOrder.map((t) => [t, D('2024-05-01')]));
  const fingerprints = new Map<string, string | null>(pipelineFingerprints(m));
  edit(fingerprints);
  return { stored, fingerprints };
}

function plans(m: PipelineModel, over: Partial<PlanInput>) {
  const input: PlanInput = { model: m, tables: [...m.loadOrder], full: false, since: null, globalDateThreshold: null, stored: new Map(), ...over };
  return planCollections(m.collections, input);
}

const froms = (p: ReturnType<typeof plans>) => Object.fromEntries(p.map((c) => [c.collection.name, c.from?.toISOString().slice(0, 10) ?? 'full']));
const reasons = (p: ReturnType<typeof plans>) => Object.fromEntries(p.flatMap((c) => c.tables.map((t) => [t.table, t.reason])));

test('unchanged mappings stay incremental', async (t) => {
  const m = await model(t);
  const p = plans(m, loadedState(m));
  assert.deepEqual(froms(p), { events: '2024-02-01', users: '2024-05-01', recipes: '2024-05-01', ghosts: '2024-05-01' });
  assert.ok(Object.values(mappingRecords(p)).every((r) => r.mapping === 'unchanged'));
  assert.deepEqual(mappingWarnings(p), []);
});

test('a changed mapping reads its collection in full; the other tables of that collection are read in full too, other collections stay incremental', async (t) => {
  const m = await model(t);
  const p = plans(m, loadedState(m, (f) => f.set('users', 'sha256:an-older-mapping')));
  assert.deepEqual(froms(p), { events: '2024-02-01', users: 'full', recipes: '2024-05-01', ghosts: '2024-05-01' });
  assert.equal(reasons(p).users, 'mapping_changed');
  assert.equal(reasons(p).user_events, 'watermark');
  const records = mappingRecords(p);
  assert.deepEqual(records.users, { fingerprint: pipelineFingerprints(m).get('users'), full_read: true, mapping: 'changed', stored_fingerprint: 'sha256:an-older-mapping' });
  assert.equal(records.user_events!.full_read, true, 'read in full with its collection');
  assert.equal(records.user_events!.mapping, 'unchanged');
  assert.equal(records.menus!.full_read, false);
  assert.equal(records.events!.full_read, false, 'read from its date threshold: it may hold rows of older documents, loaded before');
  const warnings = mappingWarnings(p);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^users has a changed mapping in pipeline\.yaml since its last load: collection users is read in full \(mapping_changed\)/);
});

test('a table loaded only from part of its collection (fingerprint PARTIAL) reads its collection in full, and says why', async (t) => {
  const m = await model(t);
  const p = plans(m, loadedState(m, (f) => f.set('users', PARTIAL)));
  assert.equal(froms(p).users, 'full');
  assert.equal(reasons(p).users, 'mapping_changed');
  assert.equal(mappingRecords(p).users!.mapping, 'partial');
  assert.deepEqual(mappingWarnings(p), [
    'users was never read in full with its mapping (loaded only from part of its collection: by reads from a date, --since, or from a run extracted with another pipeline.yaml): collection users is read in full (mapping_changed), so the table ends as a full run would make it',
  ]);
});

test('a watermark stored without fingerprint (an older etl): changed when its last run used another pipeline.yaml', async (t) => {
  const m = await model(t);
  const state = loadedState(m, (f) => {
    f.set('menus', null);
    f.set('events', null);
    f.set('ghosts', null);
  });
  const lastPipelines = new Map([
    ['menus', 'another-pipeline-sha256'],
    ['events', m.sha256],
  ]);
  const p = plans(m, { ...state, lastPipelines });
  assert.equal(froms(p).recipes, 'full');
  assert.equal(reasons(p).menus, 'mapping_changed');
  assert.equal(mappingRecords(p).menus!.mapping, 'unrecorded');
  assert.match(mappingWarnings(p)[0]!, /^menus was loaded by a version of etl that recorded no mapping fingerprint, with another pipeline\.yaml: collection recipes is read in full/);
  // The same pipeline.yaml, or no run recorded: unchanged, no surprise full read after an upgrade.
  assert.equal(reasons(p).events, 'watermark_and_threshold');
  assert.equal(mappingRecords(p).events!.mapping, 'unchanged');
  assert.equal(froms(p).ghosts, '2024-05-01');
  assert.equal(mappingRecords(p).ghosts!.mapping, 'unchanged');
  assert.equal(mappingWarnings(p).length, 1);
});

test('a table with a date threshold whose mapping changed is read in full: rows of documents older than the threshold follow the new mapping too', async (t) => {
  const m = await model(t);
  const p = plans(m, loadedState(m, (f) => f.set('events', 'sha256:old')));
  assert.equal(reasons(p).events, 'mapping_changed');
  assert.equal(froms(p).events, 'full');
  assert.equal(mappingRecords(p).events!.full_read, true);
  assert.match(mappingWarnings(p)[0]!, /collection events is read in full \(mapping_changed\)/);
});

test('--full, --since and unread fingerprints: the mapping is not checked', async (t) => {
  const m = await model(t);
  const state = loadedState(m, (f) => f.set('users', 'sha256:old'));
  assert.equal(reasons(plans(m, { ...state, full: true })).users, 'full_flag');
  const since = plans(m, { ...state, since: D('2024-04-01') });
  assert.equal(reasons(since).users, 'since');
  assert.equal(mappingRecords(since).users!.full_read, false, 'the fingerprint is not stored after this run: the next one reads in full');
  const unread = plans(m, { stored: state.stored });
  assert.equal(reasons(unread).users, 'watermark');
  assert.equal(mappingRecords(unread).users!.mapping, 'unknown');
});

test('--since a date before the threshold of a table whose mapping changed: not a full read, the fingerprint is not stored', async (t) => {
  const m = await model(t);
  const state = loadedState(m, (f) => f.set('events', 'sha256:old'));
  // etl run --since reads no stored fingerprint (mapping unknown); events' threshold is 2024-02-01.
  const since = plans(m, { stored: state.stored, since: D('2024-01-01') });
  assert.equal(reasons(since).events, 'since');
  assert.equal(mappingRecords(since).events!.full_read, false, 'rows of documents before 2024-01-01 keep the old mapping: the next run reads in full');
});

test('a table never loaded is read in full (its mapping is new)', async (t) => {
  const m = await model(t);
  const state = loadedState(m);
  state.stored.delete('menus');
  state.fingerprints.delete('menus');
  const p = plans(m, state);
  assert.equal(reasons(p).menus, 'never_loaded');
  assert.equal(froms(p).recipes, 'full');
  assert.equal(mappingRecords(p).menus!.mapping, 'new');
});

test('a table never loaded under a date threshold: its first read, from the threshold, is a full read (it holds no row yet)', async (t) => {
  const m = await model(t);
  const state = loadedState(m);
  state.stored.delete('events');
  state.fingerprints.delete('events');
  const p = plans(m, state);
  assert.equal(reasons(p).events, 'threshold');
  assert.equal(froms(p).events, '2024-02-01');
  assert.equal(mappingRecords(p).events!.full_read, true);
});

test('a date threshold in the future: the tables that read from it alone are named, once per threshold; a past one, or one behind a watermark, says nothing', async (t) => {
  const m = await model(t);
  const now = new Date('2026-12-06T00:00:00Z');
  const future = plans(m, { globalDateThreshold: new Date('2099-01-01T00:00:00Z') });
  const warnings = planWarnings(future, now);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /^date threshold 2099-01-01T00:00:00\.000Z is in the future: (\w+, )*users(, \w+)* read no document until then \(GLOBAL_DATE_THRESHOLD, settings\.date_threshold or the table's date_threshold: is the year right\?\)$/);
  assert.deepEqual(planWarnings(plans(m, { globalDateThreshold: new Date('2024-01-01T00:00:00Z') }), now), []);
  // Behind a stored watermark the threshold only widens the window backwards: it is not what is read from.
  assert.deepEqual(planWarnings(plans(m, { ...loadedState(m), globalDateThreshold: new Date('2099-01-01T00:00:00Z') }), now), []);
});
