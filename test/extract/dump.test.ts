// Extract from mongodump output on disk (folders, .bson.gz, archives): byte-identical NDJSON,
// types kept, client-side filter and projection, order and sorting, damage reported with offsets,
// and the manifest's numbers recomputed from the files.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, writeFile, truncate, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EJSON } from 'bson';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { SourceError } from '../../errors/etl-error.ts';
import { archiveBytes, bsonBytes, day, makeEvents, makeRecipes, makeUsers, writeDumpFolder } from './dump-writer.ts';
import { tempDir } from '../harness/temp-dir.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, 'fixtures/pipeline.yaml');

async function tmp(name: string): Promise<string> {
  return tempDir(`etl-extract-${name}-`);
}

async function ndjsonOf(report: { runDir: string }, collection: string): Promise<string> {
  return readFile(path.join(report.runDir, 'extract', `${collection}.ndjson`), 'utf8');
}

const users = makeUsers(40, { decimal: true });
const data = { users, events: makeEvents(5), recipes: makeRecipes(10) };

test('dump folder, db folder, gzipped folder, archive and gzipped archive give byte-identical NDJSON', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('same');
  await writeDumpFolder(path.join(dir, 'plain/appdb'), data);
  await writeDumpFolder(path.join(dir, 'gz/appdb'), data, { gzip: true });
  await writeFile(path.join(dir, 'app.archive'), archiveBytes('appdb', data));
  await writeFile(path.join(dir, 'app.archive.gz'), archiveBytes('appdb', data, { gzip: true, segment: 2 }));
  const sources = [path.join(dir, 'plain'), path.join(dir, 'plain/appdb'), path.join(dir, 'gz'), path.join(dir, 'app.archive'), path.join(dir, 'app.archive.gz')];
  const outputs: Record<string, string>[] = [];
  for (const [i, source] of sources.entries()) {
    const report = await runExtract({ model, stagingDir: path.join(dir, `staging${i}`), source: { kind: 'dump', path: source } });
    const files: Record<string, string> = {};
    for (const c of ['users', 'events', 'recipes', 'ghosts']) files[c] = await ndjsonOf(report, c);
    outputs.push(files);
  }
  for (const o of outputs.slice(1)) assert.deepEqual(o, outputs[0]);
  assert.equal(outputs[0]!.users!.split('\n').length - 1, 40);
});

test('Decimal128, Int64, Double, Int32 and Binary survive into canonical Extended JSON; projection keeps field order', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('types');
  await writeDumpFolder(path.join(dir, 'appdb'), data);
  const report = await runExtract({ model, stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') } });
  const first = (await ndjsonOf(report, 'users')).split('\n')[0]!;
  // Only projected fields, in the document's own order (password, ratio, nested, avatar dropped).
  assert.equal(
    first,
    '{"_id":{"$oid":"65f000000000000000000001"},"creation_date":{"$date":{"$numberLong":"1709251200000"}},' +
      '"update_date":{"$date":{"$numberLong":"1709251200000"}},"email":"user0@example.org",' +
      '"score":{"$numberLong":"9007199254740993"},' +
      '"registered_events":[{"$oid":"65f0000000000000000003e8"},{"$oid":"65f0000000000000000003e9"}],' +
      '"balance":{"$numberDecimal":"0.10"}}',
  );
  const parsed = EJSON.parse(first, { relaxed: false });
  assert.equal(parsed.score._bsontype, 'Long');
  assert.equal(parsed.balance._bsontype, 'Decimal128');
});

test('a wider projection keeps Int32, Double and Binary types', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('binary');
  // The events collection projects `title`: give it typed values.
  const { Binary, Double, Int32 } = await import('bson');
  const events = [{ _id: 1, title: new Binary(Buffer.from('hi'), 0) }, { _id: 2, title: new Double(2) }, { _id: 3, title: new Int32(2) }];
  await writeDumpFolder(path.join(dir, 'appdb'), { events });
  const report = await runExtract({ model, stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') } });
  assert.equal(
    await ndjsonOf(report, 'events'),
    '{"_id":{"$numberInt":"1"},"title":{"$binary":{"base64":"aGk=","subType":"00"}}}\n' +
      '{"_id":{"$numberInt":"2"},"title":{"$numberDouble":"2.0"}}\n' +
      '{"_id":{"$numberInt":"3"},"title":{"$numberInt":"2"}}\n',
  );
});

test('the server filter is applied to dumps; a missing collection gives a warning and an empty file', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('filter');
  await writeDumpFolder(path.join(dir, 'appdb'), data);
  const report = await runExtract({ model, stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') } });
  const recipes = (await ndjsonOf(report, 'recipes')).trim().split('\n').map((l) => EJSON.parse(l));
  assert.equal(recipes.length, 5);
  assert.ok(recipes.every((r) => r.__t === 'menu'));
  const ghosts = report.collections.find((c) => c.collection === 'ghosts')!;
  assert.equal(ghosts.documents, 0);
  assert.equal(ghosts.bytes, 0);
  assert.equal(await ndjsonOf(report, 'ghosts'), '');
  assert.match(report.warnings.join('\n'), /ghosts.*does not exist/);
  const recipesRecord = report.collections.find((c) => c.collection === 'recipes')!;
  assert.equal(recipesRecord.scanned, 10);
  assert.equal(recipesRecord.documents, 5);
});

test('manifest counts and sha256 match the files; pipeline.yaml copied byte for byte; latest points at the run', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('manifest');
  await writeDumpFolder(path.join(dir, 'appdb'), data);
  const stagingDir = path.join(dir, 'staging');
  const report = await runExtract({ model, stagingDir, source: { kind: 'dump', path: path.join(dir, 'appdb') } });
  const manifest = await readManifest(runPaths(stagingDir, report.runId));
  const section = manifest.stages.extract!;
  assert.equal(section.status, 'done');
  assert.equal(manifest.source.kind, 'dump');
  assert.deepEqual(Object.keys(section.collections).sort(), ['events', 'ghosts', 'recipes', 'users']);
  for (const [name, rec] of Object.entries(section.collections)) {
    const bytes = await readFile(path.join(report.runDir, rec.file));
    assert.equal(rec.bytes, bytes.length, name);
    assert.equal(rec.sha256, createHash('sha256').update(bytes).digest('hex'), name);
    const lines = bytes.toString('utf8').split('\n').filter(Boolean).length;
    assert.equal(rec.records, lines, name);
    assert.equal(rec.documents, lines, name);
    const fromReport = report.collections.find((c) => c.collection === name)!;
    assert.equal(fromReport.sha256, rec.sha256);
    assert.equal(fromReport.documents, rec.documents);
  }
  assert.deepEqual(section.collections.users!.tables, ['users', 'user_events']);
  assert.deepEqual(await readFile(path.join(report.runDir, 'pipeline.yaml')), await readFile(PIPELINE));
  assert.equal((await readFile(path.join(stagingDir, 'latest'), 'utf8')).trim(), report.runId);
  // A full read of a dump: the next watermark is the latest date in the dump minus the margin.
  const latest = Math.max(...users.flatMap((u) => [u.creation_date.getTime(), u.update_date.getTime()]));
  assert.equal(section.collections.users!.watermark!.next, new Date(latest - 300_000).toISOString());
  assert.equal(section.collections.users!.watermark!.from, null);
  assert.equal(section.collections.users!.watermark!.next_basis, 'dump_dates');
  assert.equal(section.server_started_at, null);
});

test('--since reads documents created or updated at or after the date (inclusive) from a dump', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('since');
  await writeDumpFolder(path.join(dir, 'appdb'), data);
  const since = day(20);
  const report = await runExtract({ model, stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') }, since });
  const got = (await ndjsonOf(report, 'users')).trim().split('\n').map((l) => EJSON.parse(l, { relaxed: false }));
  const expected = users.filter((u) => u.creation_date.getTime() >= since.getTime() || u.update_date.getTime() >= since.getTime());
  assert.ok(expected.some((u) => u.creation_date.getTime() === since.getTime()), 'a document exactly at the date exists');
  assert.deepEqual(got.map((d) => d._id.toHexString()), expected.map((u) => u._id.toHexString()));
  assert.equal(report.collections.find((c) => c.collection === 'users')!.watermark!.from, since.toISOString());
  assert.equal(report.full, false);
});

test('a dump out of _id order is sorted (external sort with spills) to the same bytes', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('sort');
  const many = makeUsers(500, { decimal: true });
  await writeDumpFolder(path.join(dir, 'sorted/appdb'), { users: many });
  // A deterministic shuffle.
  const shuffled = [...many].sort((a, b) => ((a.count.value * 7919) % 503) - ((b.count.value * 7919) % 503));
  await writeDumpFolder(path.join(dir, 'shuffled/appdb'), { users: shuffled });
  const a = await runExtract({ model, stagingDir: path.join(dir, 's1'), source: { kind: 'dump', path: path.join(dir, 'sorted') }, tables: ['users'] });
  const b = await runExtract({ model, stagingDir: path.join(dir, 's2'), source: { kind: 'dump', path: path.join(dir, 'shuffled') }, tables: ['users'], sortChunkBytes: 8 * 1024 });
  assert.equal(await ndjsonOf(b, 'users'), await ndjsonOf(a, 'users'));
  assert.equal(a.collections[0]!.order, 'dump');
  assert.equal(b.collections[0]!.order, 'sorted');
  // The sort's temp folder is gone, and only the NDJSON file is left.
  assert.deepEqual(await readdir(path.join(b.runDir, 'extract')), ['users.ndjson']);
  // --tables users: only the users collection, recorded for the users table only.
  assert.deepEqual(b.collections.map((c) => c.collection), ['users']);
  assert.deepEqual(b.collections[0]!.tables, ['users']);
});

test('a truncated or corrupt .bson file is reported with its name and byte offset; the run is failed and latest not moved', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('corrupt');
  const db = path.join(dir, 'appdb');
  await writeDumpFolder(db, data);
  const stagingDir = path.join(dir, 'staging');
  const good = await runExtract({ model, stagingDir, source: { kind: 'dump', path: db } });

  const file = path.join(db, 'users.bson');
  const bytes = bsonBytes(users);
  const sizes = users.map((u) => bsonBytes([u]).length);
  const tenth = sizes.slice(0, 10).reduce((a, b) => a + b, 0);
  await truncate(file, tenth + 7);
  await assert.rejects(runExtract({ model, stagingDir, source: { kind: 'dump', path: db } }), (e: unknown) => {
    assert.ok(e instanceof SourceError);
    assert.equal(e.code, 'dump_corrupt');
    assert.ok(e.message.includes(file), e.message);
    assert.match(e.message, new RegExp(`byte offset ${tenth}\\b`));
    return true;
  });
  // Corrupt length in the middle of the file.
  const damaged = Buffer.from(bytes);
  damaged.writeInt32LE(-5, tenth);
  await writeFile(file, damaged);
  await assert.rejects(runExtract({ model, stagingDir, source: { kind: 'dump', path: db } }), (e: unknown) => {
    assert.ok(e instanceof SourceError);
    assert.match(e.message, new RegExp(`users\\.bson: invalid document length -5 at byte offset ${tenth}$`));
    return true;
  });
  assert.equal((await readFile(path.join(stagingDir, 'latest'), 'utf8')).trim(), good.runId);
  const runs = (await readdir(stagingDir)).filter((n) => n !== 'latest' && n !== good.runId);
  assert.equal(runs.length, 2);
  for (const run of runs) {
    const m = await readManifest(runPaths(stagingDir, run));
    assert.equal(m.stages.extract!.status, 'failed');
    assert.equal(m.stages.extract!.error!.code, 'dump_corrupt');
    const left = await readdir(path.join(stagingDir, run, 'extract'));
    assert.ok(!left.some((f) => f.startsWith('users')), `no users file left: ${left.join(', ')}`);
    assert.ok(!left.some((f) => f.endsWith('.partial')), `no partial file: ${left.join(', ')}`);
  }
});

test('a corrupt archive and a gzipped file cut short name the file and offset', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('archive-bad');
  const full = archiveBytes('appdb', data);
  await writeFile(path.join(dir, 'cut.archive'), full.subarray(0, full.length - 100));
  await assert.rejects(runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: path.join(dir, 'cut.archive') } }), (e: unknown) => {
    assert.ok(e instanceof SourceError, String(e));
    assert.match(e.message, /cut\.archive: .*at byte offset \d+/);
    return true;
  });
  await writeFile(path.join(dir, 'notarchive'), Buffer.from('hello world, not a dump'));
  await assert.rejects(runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: path.join(dir, 'notarchive') } }), /not a mongodump archive/);
  const gz = path.join(dir, 'gz/appdb');
  await writeDumpFolder(gz, data, { gzip: true });
  const gzFile = path.join(gz, 'users.bson.gz');
  await truncate(gzFile, (await stat(gzFile)).size - 40);
  await assert.rejects(runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: gz } }), (e: unknown) => {
    assert.ok(e instanceof SourceError, String(e));
    assert.ok(e.message.includes(gzFile), e.message);
    assert.match(e.message, /byte offset \d+/);
    return true;
  });
});

test('an archive cut at a segment boundary, before a collection\'s end-of-collection segment, is refused: it is not read as that collection whole', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('archive-boundary');
  const full = archiveBytes('appdb', data);
  // The last segment is a collection's end ({db, collection, EOF: true, CRC}, then a terminator): cut just before it.
  const eof = full.lastIndexOf(Buffer.from('\x08EOF\0\x01', 'latin1'));
  const cut = full.lastIndexOf(Buffer.from('\x02db\0', 'latin1'), eof) - 4;
  assert.ok(cut > 0 && full.readInt32LE(cut - 4) === -1, 'the cut follows a terminator');
  const file = path.join(dir, 'cut.archive');
  await writeFile(file, full.subarray(0, cut));
  await assert.rejects(runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: file } }), (e: unknown) => {
    assert.ok(e instanceof SourceError, String(e));
    assert.equal(e.code, 'dump_corrupt');
    assert.match(e.message, /cut\.archive: archive truncated: appdb\.\w+ has no end-of-collection segment at byte offset \d+/);
    return true;
  });
});

test('a .bson.gz followed by bytes that are not gzip says so, not "byte offset 0"', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('gzip-tail');
  const gz = path.join(dir, 'gz/appdb');
  await writeDumpFolder(gz, data, { gzip: true });
  const gzFile = path.join(gz, 'users.bson.gz');
  await writeFile(gzFile, Buffer.concat([await readFile(gzFile), Buffer.from('JUNK after the stream')]));
  await assert.rejects(runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: gz } }), (e: unknown) => {
    assert.ok(e instanceof SourceError, String(e));
    assert.equal(e.message, `cannot read ${gzFile}: its gzip stream is followed by bytes that are not gzip`);
    assert.match(e.hint ?? '', /gzip -t/);
    return true;
  });
});

test('an archive segment of a namespace its header does not declare (a damaged segment header) stops the read at its offset: its documents are never dropped unread', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('archive-namespace');
  const bytes = archiveBytes('appdb', data);
  // The first segment header of users after the prelude's terminator: damaged, it names "Xsers".
  const name = bytes.indexOf(Buffer.from('collection\0\x06\0\0\0users\0', 'latin1'), bytes.indexOf(Buffer.from([0xff, 0xff, 0xff, 0xff])));
  assert.ok(name > 0);
  const start = bytes.lastIndexOf(Buffer.from('\x02db\0', 'latin1'), name) - 4;
  bytes['collection\0\x06\0\0\0'.length + name] = 0x58;
  const file = path.join(dir, 'damaged.archive');
  await writeFile(file, bytes);
  await assert.rejects(runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: file } }), (e: unknown) => {
    assert.ok(e instanceof SourceError, String(e));
    assert.equal(e.code, 'dump_corrupt');
    assert.equal(e.message, `${file}: a segment of appdb.Xsers, a namespace the archive's header does not declare at byte offset ${start}`);
    return true;
  });
});

test('an aborted extract leaves the manifest failed, no partial file, latest unmoved', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('abort');
  await writeDumpFolder(path.join(dir, 'appdb'), { users: makeUsers(3000), events: makeEvents(5), recipes: makeRecipes(4) });
  const stagingDir = path.join(dir, 'staging');
  const controller = new AbortController();
  const reason = new Error('stop now');
  await assert.rejects(
    runExtract({
      model,
      stagingDir,
      source: { kind: 'dump', path: path.join(dir, 'appdb') },
      signal: controller.signal,
      onProgress: (e) => {
        if (e.kind === 'collection_progress' && e.collection === 'users' && e.documents > 0) controller.abort(reason);
        if (e.kind === 'collection_started' && e.collection === 'users') setImmediate(() => controller.abort(reason));
      },
    }),
  );
  const runs = (await readdir(stagingDir)).filter((n) => n !== 'latest');
  assert.equal(runs.length, 1);
  await assert.rejects(readFile(path.join(stagingDir, 'latest')), /ENOENT/);
  const m = await readManifest(runPaths(stagingDir, runs[0]!));
  assert.equal(m.stages.extract!.status, 'failed');
  assert.equal(m.stages.extract!.error!.code, 'interrupted');
  const left = await readdir(path.join(stagingDir, runs[0]!, 'extract'));
  assert.deepEqual(left.filter((f) => f.startsWith('users')), []);
});

test('a dump folder holding several databases needs --mongo-db; unknown names are refused', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('multi');
  await writeDumpFolder(path.join(dir, 'dump/one'), { events: makeEvents(2) });
  await writeDumpFolder(path.join(dir, 'dump/two'), { events: makeEvents(3) });
  await writeDumpFolder(path.join(dir, 'dump/admin'), { 'system.version': [{ _id: 'x' }] });
  await assert.rejects(runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: path.join(dir, 'dump') } }), /several databases \(one, two\)/);
  const r = await runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: path.join(dir, 'dump'), database: 'two' }, tables: ['events'] });
  assert.equal(r.collections[0]!.documents, 3);
  assert.match(r.source.description, /database two/);
  await assert.rejects(runExtract({ model, stagingDir: path.join(dir, 's'), source: { kind: 'dump', path: path.join(dir, 'dump'), database: 'three' } }), /no database "three"/);
});

test('a dump out of _id order with _ids of several types is sorted in the server order, to the bytes of a sorted dump', async () => {
  const model = await loadPipeline(PIPELINE);
  const dir = await tmp('sort-types');
  const { Int32 } = await import('bson');
  const ids = [...Array.from({ length: 40 }, (_, i) => new Int32(i)), ...Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(3, '0')}`), ...makeUsers(40).map((u) => u._id)];
  const events = ids.map((_id, i) => ({ _id, title: `event ${i}` }));
  await writeDumpFolder(path.join(dir, 'sorted/appdb'), { events });
  const shuffled = [...events].sort((a, b) => ((events.indexOf(a) * 7919) % 127) - ((events.indexOf(b) * 7919) % 127));
  await writeDumpFolder(path.join(dir, 'shuffled/appdb'), { events: shuffled });
  const a = await runExtract({ model, stagingDir: path.join(dir, 's1'), source: { kind: 'dump', path: path.join(dir, 'sorted') }, tables: ['events'] });
  const b = await runExtract({ model, stagingDir: path.join(dir, 's2'), source: { kind: 'dump', path: path.join(dir, 'shuffled') }, tables: ['events'], sortChunkBytes: 1024 });
  assert.equal(a.collections[0]!.order, 'dump');
  assert.equal(b.collections[0]!.order, 'sorted');
  assert.equal(await ndjsonOf(b, 'events'), await ndjsonOf(a, 'events'));
  assert.equal((await ndjsonOf(a, 'events')).split('\n').length - 1, 120);
});
