// Hostile documents through the mongodump path (issue 13, items 1, 3, 4, 5 and 12), written as BSON
// bytes by hand: none aborts the run, none changes silently. Each ends rejected with its reason
// (by extract, or by transform per the type contract) or staged unambiguously; transform, verify
// and pack agree with what extract staged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import * as tar from 'tar';
import { Double, Int32, serialize, type Document } from 'bson';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { verifyRun } from '../../audit/verify.ts';
import { packRun } from '../../audit/pack.ts';
import { SourceError } from '../../errors/etl-error.ts';
import { day, documentOf, elementBytes, nestedElement, objectIdAt, rawDateElement, rawStringElement } from './dump-writer.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, 'fixtures/hostile-pipeline.yaml');
const LONE_SURROGATE = Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]); // "a", ED A0 80, "b"

const base = (n: number): Buffer[] => [elementBytes('_id', objectIdAt(n)), elementBytes('creation_date', day(1)), elementBytes('update_date', day(2))];
const bytesOf = (doc: Document): Buffer => Buffer.from(serialize(doc));

/** The offers collection: one document per hostile kind, in _id order, plus plain ones around them. */
function offers(): { name: string; bytes: Buffer }[] {
  return [
    { name: 'plain', bytes: documentOf([...base(1), elementBytes('duration', new Int32(30)), elementBytes('owner', 'u1'), elementBytes('label', 'fine'), elementBytes('start_day', day(3)), elementBytes('details', { a: new Int32(1) })]) },
    // A real embedded document shaped like an Extended JSON wrapper, in three columns.
    { name: 'number-shaped document', bytes: documentOf([...base(2), elementBytes('duration', { $numberInt: '7' }), elementBytes('label', 'two')]) },
    { name: 'oid-shaped document', bytes: documentOf([...base(3), elementBytes('owner', { $oid: '65f000000000000000000001' }), elementBytes('label', 'three')]) },
    { name: 'date-shaped document', bytes: documentOf([elementBytes('_id', objectIdAt(4)), elementBytes('creation_date', { $date: '2021-01-01T00:00:00Z' }), elementBytes('update_date', day(2)), elementBytes('label', 'four')]) },
    // The escape's own key in a real document: escaped in turn; JSONB keeps the escape.
    { name: 'escape-shaped document', bytes: documentOf([...base(5), elementBytes('details', { $etlDocument: new Int32(1), x: { $numberInt: '2' } }), elementBytes('label', 'five')]) },
    { name: 'no _id', bytes: bytesOf({ creation_date: day(1), update_date: day(2), label: 'orphan' }) },
    // Invalid UTF-8 in a field both tables read, in a field one table reads, in a field no table reads.
    { name: 'bad label', bytes: documentOf([...base(7), rawStringElement('label', LONE_SURROGATE)]) },
    { name: 'bad owner', bytes: documentOf([...base(8), rawStringElement('owner', LONE_SURROGATE), elementBytes('label', 'eight')]) },
    { name: 'bad unread field', bytes: documentOf([...base(9), rawStringElement('notes', LONE_SURROGATE), elementBytes('label', 'nine')]) },
    // Nesting: 100,000 levels in a mapped field, 101 levels (just over the limit), 100 (at it), 100,000 unread.
    { name: 'deep mapped', bytes: documentOf([...base(10), nestedElement('deep', 100_000), elementBytes('label', 'ten')]) },
    { name: 'just too deep', bytes: documentOf([...base(11), nestedElement('deep', 101), elementBytes('label', 'eleven')]) },
    { name: 'at the limit', bytes: documentOf([...base(12), nestedElement('deep', 100), elementBytes('label', 'twelve')]) },
    { name: 'deep unread', bytes: documentOf([...base(13), nestedElement('junk', 100_000), elementBytes('label', 'thirteen')]) },
    // Dates beyond JavaScript's range.
    { name: 'far date', bytes: documentOf([...base(14), rawDateElement('start_day', 9_000_000_000_000_000_000n), elementBytes('label', 'fourteen')]) },
    { name: 'least date', bytes: documentOf([elementBytes('_id', objectIdAt(15)), rawDateElement('creation_date', -9_223_372_036_854_775_808n), elementBytes('update_date', day(2)), elementBytes('label', 'fifteen')]) },
    { name: 'plain too', bytes: documentOf([...base(16), elementBytes('duration', new Double(45)), elementBytes('label', 'sixteen')]) },
  ];
}

/** A dump of the offers named (all of them by default), extracted. */
async function setup(t: { after(fn: () => Promise<void>): void }, names?: readonly string[]) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-hostile-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const docs = names ? offers().filter((d) => names.includes(d.name)) : offers();
  assert.equal(docs.length, names?.length ?? docs.length, 'every named document exists');
  await mkdir(path.join(dir, 'appdb'), { recursive: true });
  await writeFile(path.join(dir, 'appdb/offers.bson'), Buffer.concat(docs.map((d) => d.bytes)));
  const offsets = new Map<string, number>();
  let at = 0;
  for (const d of docs) {
    offsets.set(d.name, at);
    at += d.bytes.length;
  }
  const model = await loadPipeline(PIPELINE);
  const stagingDir = path.join(dir, 'staging');
  const report = await runExtract({ model, stagingDir, source: { kind: 'dump', path: path.join(dir, 'appdb') } });
  const staged = (await readFile(path.join(report.runDir, 'extract/offers.ndjson'), 'utf8')).split('\n').filter(Boolean);
  const line = (n: number) => staged.find((l) => l.startsWith(`{"_id":{"$oid":"${objectIdAt(n).toHexString()}"}`));
  const transformAndVerify = async () => {
    const transformed = await runTransform({ model, stagingDir });
    const verified = await verifyRun({ target: report.runDir });
    assert.deepEqual(verified.mismatches, []);
    const rejectsOf = async (table: string) =>
      Object.fromEntries((await ndjson(path.join(report.runDir, `transform/${table}.rejects.ndjson`))).map((r) => [r._id, [r.column, r.reason]]));
    return { transformed, verified, rejectsOf, table: (name: string) => transformed.tables.find((x) => x.table === name)! };
  };
  return { dir, docs, offsets, model, stagingDir, report, staged, line, transformAndVerify };
}

const hex = (n: number) => objectIdAt(n).toHexString();

test('item 1: a subdocument shaped like an Extended JSON wrapper stays a document and is rejected per the type contract', async (t) => {
  const s = await setup(t, ['plain', 'number-shaped document', 'oid-shaped document', 'date-shaped document']);
  const { rejectsOf, table } = await s.transformAndVerify();
  assert.deepEqual(await rejectsOf('offers'), {
    [hex(2)]: ['duration', 'not_an_integer'],
    [hex(3)]: ['owner', 'not_a_string'],
    [hex(4)]: ['created_at', 'not_a_date'],
  });
  assert.equal(table('offers').rows, 1);
  assert.equal(table('offer_labels').rows, 4);
});

test('item 3: a document without _id is rejected alone with its offset; the run goes on and the counts reconcile', async (t) => {
  const s = await setup(t, ['plain', 'no _id', 'plain too']);
  const offers = s.report.collections[0]!;
  assert.deepEqual([offers.scanned, offers.documents, offers.rejected], [3, 2, 1]);
  const rejects = await ndjson(path.join(s.report.runDir, 'extract/offers.rejects.ndjson'));
  assert.deepEqual(rejects.map((r) => [r.collection, r._id, r.reason, r.offset, r.position]), [['offers', null, 'missing_id', s.offsets.get('no _id'), 2]]);
  const { table, verified } = await s.transformAndVerify();
  assert.equal(table('offers').rows, 2);
  assert.ok(verified.identities.some((i) => /extract: rejected = lines of the extract rejects file/.test(i.name) && i.ok));
});

test('item 4: a string that is not UTF-8 rejects a row (invalid_unicode) only where a column reads it', async (t) => {
  const s = await setup(t, ['plain', 'bad label', 'bad owner', 'bad unread field']);
  assert.equal(s.report.collections[0]!.documents, 4);
  const { rejectsOf, table } = await s.transformAndVerify();
  assert.deepEqual(await rejectsOf('offers'), { [hex(7)]: ['label', 'invalid_unicode'], [hex(8)]: ['owner', 'invalid_unicode'] });
  assert.deepEqual(await rejectsOf('offer_labels'), { [hex(7)]: ['label', 'invalid_unicode'] });
  assert.equal(table('offers').rows, 2);
  assert.equal(table('offer_labels').rows, 3);
});

test('item 5: a mapped field nested 100,000 levels rejects its document (too_deep) with its _id; an unread one does no harm', async (t) => {
  const s = await setup(t, ['plain', 'deep mapped', 'deep unread', 'plain too']);
  const rejects = await ndjson(path.join(s.report.runDir, 'extract/offers.rejects.ndjson'));
  assert.deepEqual(rejects.map((r) => [r._id, r.reason, r.offset]), [[hex(10), 'too_deep', s.offsets.get('deep mapped')]]);
  const { table } = await s.transformAndVerify();
  assert.equal(table('offers').documents, 3);
  assert.equal(table('offers').rows, 3);
});

test('item 12: a Date beyond JavaScript keeps its milliseconds in the staged file and is rejected as invalid_date', async (t) => {
  const s = await setup(t, ['plain', 'far date', 'least date']);
  assert.match(s.line(14)!, /"start_day":\{"\$date":\{"\$numberLong":"9000000000000000000"\}\}/);
  assert.match(s.line(15)!, /"creation_date":\{"\$date":\{"\$numberLong":"-9223372036854775808"\}\}/);
  const { rejectsOf } = await s.transformAndVerify();
  assert.deepEqual(await rejectsOf('offers'), { [hex(14)]: ['start_day', 'invalid_date'], [hex(15)]: ['created_at', 'invalid_date'] });
});

test('an _id Date beyond any calendar is rejected (invalid_id) naming its milliseconds, never "NaN"', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-hostile-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const dates = [elementBytes('creation_date', day(1)), elementBytes('update_date', day(2)), elementBytes('label', 'dated')];
  await mkdir(path.join(dir, 'appdb'), { recursive: true });
  await writeFile(
    path.join(dir, 'appdb/offers.bson'),
    Buffer.concat([documentOf([rawDateElement('_id', 9_000_000_000_000_000_000n), ...dates]), documentOf([rawDateElement('_id', -9_223_372_036_854_775_808n), ...dates]), documentOf([...base(1), elementBytes('label', 'fine')])]),
  );
  const report = await runExtract({ model: await loadPipeline(PIPELINE), stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') } });
  const rejects = await ndjson(path.join(report.runDir, 'extract/offers.rejects.ndjson'));
  assert.deepEqual(
    rejects.map((r) => [r._id, r.reason]),
    [
      ['{"$date":{"$numberLong":"9000000000000000000"}}', 'invalid_id'],
      ['{"$date":{"$numberLong":"-9223372036854775808"}}', 'invalid_id'],
    ],
  );
  assert.equal(report.collections[0]!.documents, 1);
});

interface RejectLine {
  _id: string | null;
  column?: string;
  reason: string;
  offset?: number | null;
  position?: number;
  file?: string | null;
  detail?: string;
  collection?: string;
}

async function ndjson(file: string): Promise<RejectLine[]> {
  return (await readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RejectLine);
}

test("an extract reject's value cut at 200 characters never ends in half a surrogate pair (an emoji at the cut)", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-hostile-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Staged as {"label":"xxx…😀…: 10 characters before the label's, so the emoji's pair spans characters 199 and 200.
  const label = `${'x'.repeat(189)}😀 and more`;
  await mkdir(path.join(dir, 'appdb'), { recursive: true });
  await writeFile(path.join(dir, 'appdb/offers.bson'), Buffer.concat([bytesOf({ label, creation_date: day(1), update_date: day(2) }), documentOf([...base(1), elementBytes('label', 'fine')])]));
  const report = await runExtract({ model: await loadPipeline(PIPELINE), stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') } });
  const [reject] = await ndjson(path.join(report.runDir, 'extract/offers.rejects.ndjson'));
  const value = (reject as RejectLine & { value: string }).value;
  assert.equal(value, `{"label":"${'x'.repeat(189)}…`);
});

test('the documents extract refused are named in the keys files; a run transformed before that (no extract_rejected) still verifies', async (t) => {
  const s = await setup(t, ['plain', 'no _id', 'deep mapped', 'plain too']);
  const { table } = await s.transformAndVerify();
  // The too-deep document has an _id: named (the one without an _id cannot be).
  for (const name of ['offers', 'offer_labels']) assert.equal(table(name).extract_rejected, 1, name);
  const manifestFile = path.join(s.report.runDir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
  // What an older transform wrote: the keys files without the refused document, no extract_rejected.
  for (const [name, record] of Object.entries(manifest.stages.transform.tables as Record<string, { keys: { file: string; bytes: number; sha256: string; records: number }; extract_rejected?: number }>)) {
    const file = path.join(s.report.runDir, record.keys.file);
    const kept = (await readFile(file, 'utf8')).split('\n').filter((l) => !l.startsWith(hex(10)));
    assert.equal(kept.length, record.keys.records + 1 /* header */ + 1 /* the end */ - 1, name);
    const text = kept.join('\n');
    await writeFile(file, text);
    record.keys = { ...record.keys, bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex'), records: record.keys.records - 1 };
    delete record.extract_rejected;
  }
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
  const verified = await verifyRun({ target: s.report.runDir });
  assert.deepEqual(verified.mismatches, []);
  assert.equal(verified.retransform.ran, true);
});

test('verify names extract reject reasons the manifest miscounts: a reason moved to another, or one more than the rejects file holds', async (t) => {
  const s = await setup(t, ['plain', 'no _id', 'deep mapped', 'plain too']);
  await s.transformAndVerify();
  const manifestFile = path.join(s.report.runDir, 'manifest.json');
  const original = await readFile(manifestFile, 'utf8');
  const withReasons = async (reasons: Record<string, number>) => {
    const manifest = JSON.parse(original);
    assert.deepEqual(manifest.stages.extract.collections.offers.rejected_reasons, { missing_id: 1, too_deep: 1 });
    manifest.stages.extract.collections.offers.rejected_reasons = reasons;
    await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
    return (await verifyRun({ target: s.report.runDir })).mismatches;
  };
  // The same total, one reason moved: only the rejects file's lines can tell.
  const moved = await withReasons({ missing_id: 2 });
  assert.equal(moved.length, 1, JSON.stringify(moved));
  assert.equal(moved[0]!.file, 'extract/offers.rejects.ndjson');
  assert.equal(moved[0]!.field, 'stages.extract.collections.offers.rejected_reasons');
  assert.match(moved[0]!.expected, /missing_id 2/);
  assert.match(moved[0]!.found, /missing_id 1, too_deep 1/);
  // One more than rejected: the manifest contradicts itself too.
  const more = await withReasons({ missing_id: 1, too_deep: 2 });
  assert.ok(more.some((m) => m.check === 'count' && /rejected = Σ rejected_reasons/.test(m.expected)), JSON.stringify(more));
  assert.ok(more.some((m) => m.file === 'extract/offers.rejects.ndjson'), JSON.stringify(more));
});

test('all together: extract stages every hostile document it can, unambiguously, and rejects the others alone with where and why', async (t) => {
  const s = await setup(t);
  const offers = s.report.collections.find((c) => c.collection === 'offers')!;
  assert.equal(offers.scanned, 16);
  assert.equal(offers.documents, 13);
  assert.equal(offers.rejected, 3);
  assert.deepEqual(offers.rejected_reasons, { missing_id: 1, too_deep: 2 });
  assert.equal(offers.scanned, offers.documents + offers.rejected! + offers.unmatched!);
  assert.equal(offers.rejects!.file, 'extract/offers.rejects.ndjson');
  assert.equal(offers.rejects!.records, 3);
  const rejects = await ndjson(path.join(s.report.runDir, offers.rejects!.file));
  const file = path.join(s.dir, 'appdb/offers.bson');
  assert.deepEqual(rejects.map((r) => [r._id, r.reason, r.offset, r.position, r.file]), [
    [null, 'missing_id', s.offsets.get('no _id'), 6, file],
    [objectIdAt(10).toHexString(), 'too_deep', s.offsets.get('deep mapped'), 10, file],
    [objectIdAt(11).toHexString(), 'too_deep', s.offsets.get('just too deep'), 11, file],
  ]);
  assert.match(rejects[1]!.detail!, /more than 100 levels/);
  assert.match(s.report.warnings.join('\n'), /offers: 3 document\(s\) could not be staged \(missing_id 1, too_deep 2\)/);

  // Ordinary documents are staged exactly as before; hostile values in the escapes.
  assert.equal(s.line(1), '{"_id":{"$oid":"65f000000000000000000001"},"creation_date":{"$date":{"$numberLong":"1709337600000"}},"update_date":{"$date":{"$numberLong":"1709424000000"}},"duration":{"$numberInt":"30"},"owner":"u1","label":"fine","start_day":{"$date":{"$numberLong":"1709510400000"}},"details":{"a":{"$numberInt":"1"}}}');
  assert.match(s.line(2)!, /"duration":\{"\$etlDocument":\{"\$numberInt":"7"\}\}/);
  assert.match(s.line(3)!, /"owner":\{"\$etlDocument":\{"\$oid":"65f000000000000000000001"\}\}/);
  assert.match(s.line(4)!, /"creation_date":\{"\$etlDocument":\{"\$date":"2021-01-01T00:00:00Z"\}\}/);
  assert.match(s.line(5)!, /"details":\{"\$etlDocument":\{"\$etlDocument":\{"\$numberInt":"1"\},"x":\{"\$etlDocument":\{"\$numberInt":"2"\}\}\}\}/);
  assert.match(s.line(7)!, /"label":\{"\$etlInvalidUtf8":"Ye2ggGI="\}/);
  assert.doesNotMatch(s.line(9)!, /notes/, 'a field no table reads is not staged');
  assert.match(s.line(12)!, /"deep":\{"a":/);
  assert.doesNotMatch(s.line(13)!, /junk/);
  assert.match(s.line(14)!, /"start_day":\{"\$date":\{"\$numberLong":"9000000000000000000"\}\}/);
  assert.match(s.line(15)!, /"creation_date":\{"\$date":\{"\$numberLong":"-9223372036854775808"\}\}/);
});

test('all together: transform rejects the hostile values per the type contract, only in the tables that read them; verify and pack agree', async (t) => {
  const s = await setup(t);
  const transformed = await runTransform({ model: s.model, stagingDir: s.stagingDir });
  const offers = transformed.tables.find((x) => x.table === 'offers')!;
  const labels = transformed.tables.find((x) => x.table === 'offer_labels')!;
  const rejects = await ndjson(path.join(s.report.runDir, 'transform/offers.rejects.ndjson'));
  const byId = Object.fromEntries(rejects.map((r) => [r._id, [r.column, r.reason]]));
  assert.deepEqual(byId, {
    [objectIdAt(2).toHexString()]: ['duration', 'not_an_integer'],
    [objectIdAt(3).toHexString()]: ['owner', 'not_a_string'],
    [objectIdAt(4).toHexString()]: ['created_at', 'not_a_date'],
    [objectIdAt(7).toHexString()]: ['label', 'invalid_unicode'],
    [objectIdAt(8).toHexString()]: ['owner', 'invalid_unicode'],
    [objectIdAt(14).toHexString()]: ['start_day', 'invalid_date'],
    [objectIdAt(15).toHexString()]: ['created_at', 'invalid_date'],
  });
  assert.equal(offers.documents, 13);
  assert.equal(offers.rows, 6);
  // offer_labels reads only the label: the bad owner and the bad unread field do it no harm.
  const labelRejects = await ndjson(path.join(s.report.runDir, 'transform/offer_labels.rejects.ndjson'));
  assert.deepEqual(labelRejects.map((r) => [r._id, r.reason]), [[objectIdAt(7).toHexString(), 'invalid_unicode']]);
  assert.equal(labels.rows, 12);
  const csv = await readFile(path.join(s.report.runDir, 'transform/offers.csv'), 'utf8');
  // JSONB keeps the escape: the document is not confused with the Int32 it looks like.
  assert.ok(csv.includes('"{""$etlDocument"":{""$etlDocument"":1,""x"":{""$etlDocument"":{""$numberInt"":""2""}}}}"'), csv);

  const verified = await verifyRun({ target: s.report.runDir });
  assert.deepEqual(verified.mismatches, []);
  assert.equal(verified.ok, true);
  assert.equal(verified.retransform.ran, true);
  assert.ok(verified.identities.some((i) => i.table === 'offers' && /extract: documents read = /.test(i.name) && i.ok), JSON.stringify(verified.identities));

  const packed = await packRun({ stagingDir: s.stagingDir, runId: s.report.runId, out: path.join(s.dir, 'run.tar.gz') });
  const entries: string[] = [];
  await tar.list({ file: packed.archive, onReadEntry: (e) => void entries.push(e.path) });
  assert.ok(entries.includes(`${s.report.runId}/extract/offers.rejects.ndjson`), entries.join(', '));
  const fromArchive = await verifyRun({ target: packed.archive });
  assert.deepEqual(fromArchive.mismatches, []);
});

test('an escaped value read through a dotted path is a document: its fields are read, never its wrapper', async () => {
  const { compilePath, kindOf } = await import('../../mapping/ejson-value.ts');
  const doc = JSON.parse('{"_id":1,"a":{"$etlDocument":{"$x":{"$numberInt":"3"},"b":"inside"}}}') as Record<string, unknown>;
  assert.equal(kindOf(doc.a), 'document');
  assert.equal(compilePath('a.b')(doc), 'inside');
  assert.deepEqual(compilePath('a.$x')(doc), { $numberInt: '3' });
  assert.equal(kindOf({ $etlInvalidUtf8: 'YQ==' }), 'invalidUtf8');
});

/** `bytes` with the byte at `at` replaced, or an int32 written there. */
function damaged(bytes: Buffer, at: number, value: number, int32 = false): Buffer {
  const out = Buffer.from(bytes);
  if (int32) out.writeInt32LE(value, at);
  else out[at] = value;
  return out;
}

/** A dump folder holding `offers.bson` made of `docs`; the extract of it, and each document's offset. */
async function extractOffers(t: { after(fn: () => Promise<void>): void }, docs: readonly Buffer[], pipeline = PIPELINE, collection = 'offers') {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-hostile-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'appdb'), { recursive: true });
  const file = path.join(dir, `appdb/${collection}.bson`);
  await writeFile(file, Buffer.concat(docs));
  const offsets = docs.map((_, i) => docs.slice(0, i).reduce((n, d) => n + d.length, 0));
  const model = await loadPipeline(pipeline);
  const stagingDir = path.join(dir, 'staging');
  const extract = () => runExtract({ model, stagingDir, source: { kind: 'dump', path: path.join(dir, 'appdb') }, full: true });
  return { dir, file, offsets, model, stagingDir, extract };
}

test('a document whose fields fill its length but whose inside is not BSON is rejected alone (invalid_bson) with its _id and offset; the run goes on', async (t) => {
  // The damage is inside a value: a subdocument, an array, a subdocument in a subdocument.
  const details = elementBytes('details', { a: new Int32(1), b: 'x' });
  const aType = details.indexOf(Buffer.from('a\0')) - 1;
  const tags = elementBytes('deep', ['hello']);
  const helloLength = tags.indexOf(Buffer.from('0\0')) + 2;
  const nestedDoc = elementBytes('details', { inner: { a: new Int32(1) } });
  const innerLength = nestedDoc.indexOf(Buffer.from('inner\0')) + 'inner\0'.length;
  const docs = [
    documentOf([...base(21), elementBytes('label', 'fine')]),
    documentOf([...base(22), damaged(details, aType, 0x42), elementBytes('label', 'two')]),
    documentOf([...base(23), damaged(tags, helloLength, 1000, true), elementBytes('label', 'three')]),
    documentOf([...base(24), damaged(nestedDoc, innerLength, 3, true), elementBytes('label', 'four')]),
    documentOf([...base(25), elementBytes('label', 'also fine')]),
  ];
  const s = await extractOffers(t, docs);
  const report = await s.extract();
  const offers = report.collections.find((c) => c.collection === 'offers')!;
  assert.deepEqual([offers.scanned, offers.documents, offers.rejected, offers.rejected_reasons], [5, 2, 3, { invalid_bson: 3 }]);
  const rejects = await ndjson(path.join(report.runDir, 'extract/offers.rejects.ndjson'));
  assert.deepEqual(rejects.map((r) => [r.collection, r._id, r.reason, r.file, r.offset, r.position]), [
    ['offers', hex(22), 'invalid_bson', s.file, s.offsets[1], 2],
    ['offers', hex(23), 'invalid_bson', s.file, s.offsets[2], 3],
    ['offers', hex(24), 'invalid_bson', s.file, s.offsets[3], 4],
  ]);
  assert.match(rejects[0]!.detail!, /not BSON: unknown BSON type 0x42/);
  assert.match(rejects[1]!.detail!, /not BSON: a string has an invalid length 1000/);
  assert.match(rejects[2]!.detail!, /not BSON: a subdocument has an invalid length 3/);
  assert.match(report.warnings.join('\n'), /3 document\(s\) could not be staged \(invalid_bson 3\)/);
  const staged = (await readFile(path.join(report.runDir, 'extract/offers.ndjson'), 'utf8')).split('\n').filter(Boolean);
  assert.deepEqual(staged.map((l) => (JSON.parse(l) as { label: string }).label), ['fine', 'also fine']);
  const transformed = await runTransform({ model: s.model, stagingDir: s.stagingDir });
  assert.equal(transformed.tables.find((x) => x.table === 'offers')!.rows, 2);
});

test('a damaged field the query of a dump reads (the menus filter on __t) rejects its document (invalid_bson), not the run', async (t) => {
  const recipe = (n: number, kind: Buffer) => documentOf([elementBytes('_id', objectIdAt(n)), kind, elementBytes('name', `dish ${n}`), elementBytes('creation_date', day(1)), elementBytes('update_date', day(1))]);
  const menu = elementBytes('__t', 'menu');
  const odd = elementBytes('__t', { x: 'menu' });
  const docs = [recipe(31, menu), recipe(32, damaged(odd, odd.indexOf(Buffer.from('x\0')) + 2, -9, true)), recipe(33, elementBytes('__t', 'recipe')), recipe(34, menu)];
  // The extract tests' pipeline: menus reads recipes with the filter {__t: menu}.
  const s = await extractOffers(t, docs, path.join(HERE, 'fixtures/pipeline.yaml'), 'recipes');
  const report = await s.extract();
  const recipes = report.collections.find((c) => c.collection === 'recipes')!;
  assert.deepEqual([recipes.scanned, recipes.documents, recipes.rejected, recipes.unmatched], [4, 2, 1, 1]);
  const rejects = await ndjson(path.join(report.runDir, 'extract/recipes.rejects.ndjson'));
  assert.deepEqual(rejects.map((r) => [r._id, r.reason, r.offset, r.position]), [[hex(32), 'invalid_bson', s.offsets[1], 2]]);
});

test('a document whose length runs over the documents after it stops the run at its offset: they are never swallowed into one reject', async (t) => {
  const docs = [1, 2, 3, 4].map((n) => documentOf([...base(40 + n), elementBytes('label', `doc ${n}`)]));
  // The second document's length covers the third too: its own fields end 1 byte before the third starts.
  const swallowing = damaged(docs[1]!, 0, docs[1]!.length + docs[2]!.length, true);
  const s = await extractOffers(t, [docs[0]!, swallowing, docs[2]!, docs[3]!]);
  await assert.rejects(s.extract(), (e: unknown) => {
    assert.ok(e instanceof SourceError, String(e));
    assert.equal(e.code, 'dump_corrupt');
    assert.equal(e.message, `${s.file}: invalid BSON document (a document ends before its length (at byte ${docs[1]!.length - 1} of the document)) at byte offset ${s.offsets[1]}`);
    return true;
  });
  // Damage among the top-level fields (an unknown type byte) leaves the length in doubt too.
  const typeByte = damaged(docs[1]!, docs[1]!.indexOf(Buffer.from('label\0')) - 1, 0x42);
  const u = await extractOffers(t, [docs[0]!, typeByte, docs[2]!, docs[3]!]);
  await assert.rejects(u.extract(), new RegExp(`unknown BSON type 0x42 .*at byte offset ${u.offsets[1]}$`));
  // So does a field running over after a damaged value (a boolean holding 7, then an unknown type byte).
  const flag = elementBytes('flag', true);
  const afterBool = documentOf([...base(42), damaged(flag, flag.length - 1, 7), damaged(elementBytes('label', 'x'), 0, 0x42)]);
  const v = await extractOffers(t, [docs[0]!, afterBool, docs[2]!, docs[3]!]);
  await assert.rejects(v.extract(), new RegExp(`unknown BSON type 0x42 .*at byte offset ${v.offsets[1]}$`));
});

test('a document refused (invalid_utf8, too_deep) before its last field is read, whose length runs over the next document, stops the run: the next one is never swallowed into its reject', async (t) => {
  const third = documentOf([...base(53), elementBytes('label', 'three')]);
  for (const value of [damaged(elementBytes('details', { ab: new Int32(1) }), 'xdetails\0'.length + 5, 0xff), nestedElement('deep', 150)]) {
    const refused = documentOf([...base(52), value, elementBytes('label', 'two')]);
    const over = damaged(refused, 0, refused.length + third.length, true);
    const s = await extractOffers(t, [documentOf([...base(51), elementBytes('label', 'one')]), over, third]);
    await assert.rejects(s.extract(), (e: unknown) => {
      assert.ok(e instanceof SourceError, String(e));
      assert.equal(e.message, `${s.file}: invalid BSON document (a document ends before its length (at byte ${refused.length - 1} of the document)) at byte offset ${s.offsets[1]}`);
      return true;
    });
  }
});
