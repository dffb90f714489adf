// Delete propagation in the staged files: extract stages every `_id` (plus the fields the tables'
// filters read) of the propagating tables' collections — from the live server and from a dump, with
// no date filter — and transform turns them into each table's live keys (menus: only the events
// whose `__t` is still `menu`).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { EJSON, ObjectId, type Document } from 'bson';
import { MongoClient } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { readManifest } from '../../staging/manifest.ts';
import { resolveRun } from '../../staging/run-folder.ts';
import { stageLiveKeys } from '../../transform/live-keys.ts';
import { ConfigError } from '../../errors/etl-error.ts';
import { writeDumpFolder } from '../extract/dump-writer.ts';

const servers = useServers({ postgres: false });
const PIPELINE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../pipeline.yaml');

const old = new Date('2020-01-01T00:00:00Z');
const oid = (n: number) => new ObjectId(n.toString(16).padStart(24, '0'));
function events(): Document[] {
  const kinds = ['menu', 'webinar', 'menu', 'collectiveChallenge'];
  // Out of _id order on purpose (a dump need not be sorted).
  return [4, 1, 3, 2].map((n) => ({ _id: oid(n), __t: kinds[n - 1], name: `e${n}`, start_date: old, end_date: old, creation_date: old, update_date: old, big: 'x'.repeat(100) }));
}

async function liveKeys(stagingDir: string, model: Awaited<ReturnType<typeof loadPipeline>>, tables: string[]) {
  const paths = await resolveRun(stagingDir);
  const manifest = await readManifest(paths);
  const records = await stageLiveKeys({ model, paths, manifest, tables: new Set(tables), signal: new AbortController().signal });
  const files: Record<string, string> = {};
  for (const [t, r] of records) files[t] = await readFile(path.join(paths.dir, r.file), 'utf8');
  return { paths, manifest, records, files };
}

test('--propagate-deletes stages every _id with the filter fields; transform derives live keys per table', async (t) => {
  const model = await loadPipeline(PIPELINE);
  const mongo = await servers.mongo.newDatabase(t.name);
  const client = new MongoClient(mongo.url);
  await client.connect();
  t.after(() => client.close());
  await client.db(mongo.name).collection('events').insertMany(events());
  const work = await mkdtemp(path.join(os.tmpdir(), 'etl-ids-'));
  t.after(() => rm(work, { recursive: true, force: true }));

  // Incremental (--since after every document): the documents file is empty, the ids file is not.
  const report = await runExtract({
    model,
    stagingDir: path.join(work, 'live'),
    source: { kind: 'mongodb', mongo: { url: mongo.url, database: mongo.name } },
    tables: ['events', 'menus'],
    since: new Date('2024-01-01T00:00:00Z'),
    propagateDeletes: true,
  });
  const c = report.collections.find((x) => x.collection === 'events')!;
  assert.equal(c.documents, 0);
  assert.ok(c.ids, 'ids staged');
  assert.equal(c.ids.documents, 4);
  assert.deepEqual(c.ids.fields, ['__t']);
  assert.deepEqual(c.ids.tables, ['events', 'menus']);
  assert.deepEqual(report.propagateDeletes, { flag: true, tables: ['events', 'menus'], unsupported: [] });

  const { paths, manifest, records, files } = await liveKeys(path.join(work, 'live'), model, ['events', 'menus']);
  const idsText = await readFile(paths.extractIdsFile('events'), 'utf8');
  const lines = idsText.trim().split('\n').map((l) => EJSON.parse(l, { relaxed: false }) as Document);
  assert.deepEqual(
    lines.map((d) => [d._id.toHexString(), d.__t, Object.keys(d).length]),
    [1, 2, 3, 4].map((n) => [oid(n).toHexString(), events().find((e) => e._id.equals(oid(n)))!.__t, 2]),
    'sorted by _id on the live server, _id and __t only',
  );
  const record = (manifest.stages.extract!.collections.events as unknown as { ids: { file: string; records: number } }).ids;
  assert.equal(record.file, 'extract/events.ids.ndjson');
  assert.equal(record.records, 4);
  assert.equal(files.events, `id\n${[1, 2, 3, 4].map((n) => `${oid(n).toHexString()}\n`).join('')}`);
  assert.equal(files.menus, `id\n${oid(1).toHexString()}\n${oid(3).toHexString()}\n`, 'only the events that are menus');
  assert.equal(records.get('menus')!.filtered, 2);
  assert.equal(records.get('menus')!.records, 2);

  // The same data from a dump (not in _id order): the same live keys, as a set.
  await writeDumpFolder(path.join(work, 'dump', 'app'), { events: events() });
  const fromDump = await runExtract({
    model,
    stagingDir: path.join(work, 'dump-run'),
    source: { kind: 'dump', path: path.join(work, 'dump'), database: 'app' },
    tables: ['menus'],
    full: true,
    propagateDeletes: true,
  });
  assert.equal(fromDump.collections[0]!.ids!.documents, 2, 'menus alone: the ids pass takes its filter');
  const dump = await liveKeys(path.join(work, 'dump-run'), model, ['menus']);
  assert.deepEqual(dump.files.menus!.split('\n').sort(), files.menus!.split('\n').sort());
});

test('without the flag no ids are staged; dedupe tables propagate deletes too', async (t) => {
  const model = await loadPipeline(PIPELINE);
  const work = await mkdtemp(path.join(os.tmpdir(), 'etl-ids-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  await writeDumpFolder(path.join(work, 'dump', 'app'), { events: events() });
  const plain = await runExtract({ model, stagingDir: work, source: { kind: 'dump', path: path.join(work, 'dump'), database: 'app' }, tables: ['events'], full: true });
  assert.equal(plain.collections[0]!.ids, undefined);
  assert.equal(plain.propagateDeletes, null);
  const manifest = await readManifest(await resolveRun(work));
  assert.equal(JSON.stringify(manifest).match(/"ids"|propagate_deletes/g), null);

  // A dedupe table propagates too: its contributions name the documents (issue 12).
  const flagged = await runExtract({
    model,
    stagingDir: work,
    source: { kind: 'dump', path: path.join(work, 'dump'), database: 'app' },
    tables: ['users_logbook', 'events'],
    full: true,
    propagateDeletes: true,
  });
  assert.deepEqual(flagged.propagateDeletes!.tables, ['events', 'users_logbook']);
  assert.deepEqual(flagged.propagateDeletes!.unsupported, []);
  assert.ok(flagged.collections.find((c) => c.collection === 'coachinglogbooks')!.ids, 'the logbook documents\' ids are staged');
  const yaml = (await readFile(PIPELINE, 'utf8')).replace('    dedupe_key: [user_id, day]\n', '    dedupe_key: [user_id, day]\n    propagate_deletes: true\n');
  const file = path.join(work, 'pipeline.yaml');
  await (await import('node:fs/promises')).writeFile(file, yaml);
  assert.equal((await loadPipeline(file)).tables.get('users_logbook')!.propagateDeletes, true, 'propagate_deletes on a dedupe table is valid');
});
