// The pure strategy modules (mapping/): a document in, the rows' values out — which documents a
// table keeps, the values of each row, the document owning them, dedupe's order. No files, no
// servers: transform and `etl diff` wrap these functions, their own tests cover the outputs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resolvePipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel } from '../../model/types.ts';
import { cellComparer, latestOrder, replacesKept, SUPERSEDED, type DedupeMapping } from '../../mapping/dedupe.ts';
import { arrayLists, DUPLICATE_IN_ARRAY, forEachItem, itemValues, lacksItemId, NotAnArray, Origin, type ExplodeMapping } from '../../mapping/explode.ts';
import { tableMapping, type TableMapping } from '../../mapping/index.ts';
import { rowValues, type UpsertMapping } from '../../mapping/upsert.ts';
import type { RawDocument } from '../../mapping/ejson-value.ts';

const PIPELINE = `
tables:
  people:
    include_base: true
    additional_columns:
      - { name: city, sql_type: VARCHAR(100) }
      - { name: kind, sql_type: VARCHAR }
    additional_mappings:
      address.city: city
      __t: kind
    filter:
      __t: { $in: [person, coach] }
  people_tags:
    mongo_collection: people
    strategy: explode
    parent_column: person_id
    arrays:
      - field: tags
        item_column: tag_id
        constants: { source: tag }
      - field: visits
        item_column: tag_id
        item_id_key: place
        item_date_key: at
        constants: { source: visit }
    columns:
      - { name: person_id, sql_type: VARCHAR, nullable: false }
      - { name: tag_id, sql_type: VARCHAR, nullable: false }
      - { name: source, sql_type: VARCHAR, nullable: false }
      - { name: created_at, sql_type: TIMESTAMP }
      - { name: note, sql_type: TEXT }
    explicit_mappings:
      creation_date: created_at
    unique_constraints:
      - [person_id, tag_id, source]
  logbook:
    mongo_collection: logbooks
    strategy: dedupe
    dedupe_key: [person_id, day]
    latest_by: updated_at
    columns:
      - { name: id, sql_type: SERIAL, primary_key: true }
      - { name: person_id, sql_type: VARCHAR, nullable: false }
      - { name: day, sql_type: DATE, nullable: false }
      - { name: updated_at, sql_type: TIMESTAMP }
      - { name: score, sql_type: INTEGER }
    explicit_mappings:
      person: person_id
      update_date: updated_at
    filter:
      archived: { $ne: true }
    unique_constraints:
      - [person_id, day]
`;

const model: PipelineModel = resolvePipeline(Buffer.from(PIPELINE), '/mapping-test/pipeline.yaml');
const mapping = (table: string): TableMapping => tableMapping(model.tables.get(table)!);
const oid = (n: number) => ({ $oid: `65f0000000000000000000${n.toString(16).padStart(2, '0')}` });
const date = (iso: string) => ({ $date: { $numberLong: String(Date.parse(iso)) } });
const CREATED = date('2024-01-01T10:00:00Z');
const UPDATED = date('2024-02-01T10:00:00Z');

describe('upsert', () => {
  const m = mapping('people') as UpsertMapping;

  test('one row a document: each staged column read from its field, EJSON values untouched', () => {
    assert.equal(m.strategy, 'upsert');
    const doc: RawDocument = { _id: oid(1), creation_date: CREATED, update_date: UPDATED, address: { city: 'Lyon', zip: '69001' }, __t: 'person' };
    assert.equal(m.skip(doc), null);
    assert.deepEqual(
      m.columns.map((c) => c.name),
      ['id', 'created_at', 'updated_at', 'city', 'kind'],
    );
    assert.deepEqual(rowValues(m, doc), [oid(1), CREATED, UPDATED, 'Lyon', 'person']);
    // Absent fields, and a path through something else than a subdocument, read as absent.
    assert.deepEqual(rowValues(m, { _id: 'x', address: [{ city: 'Paris' }], __t: 'coach' }), ['x', undefined, undefined, undefined, 'coach']);
  });

  test("the table's filter leaves documents out as `filtered`", () => {
    assert.equal(m.skip({ _id: oid(2), __t: 'company' }), 'filtered');
    assert.equal(m.skip({ _id: oid(2) }), 'filtered');
    assert.equal(m.skip({ _id: oid(2), __t: ['coach', 'admin'] }), null, 'an array matches when an element does, as in MongoDB');
  });

  test('the document key: the row belongs to the document whose _id fills the id column', () => {
    assert.equal(model.tables.get('people')!.documentKey, 'id');
    assert.equal(m.keyIndex, 0);
    assert.equal(m.foldedAs, DUPLICATE_IN_ARRAY);
  });
});

describe('explode', () => {
  const m = mapping('people_tags') as ExplodeMapping;
  const rows = (doc: RawDocument) => {
    const lists = arrayLists(m, doc);
    if (lists instanceof NotAnArray) return lists;
    const out: { array: string; itemId: unknown; values: unknown[] }[] = [];
    forEachItem(m, doc, lists, (d, array, itemId, itemDate) => out.push({ array: array.spec.field, itemId, values: itemValues(array, d, itemId, itemDate) }));
    return out;
  };

  test('each item of each array is a row: parent id, item id, the array constants, parent fields', () => {
    assert.equal(m.strategy, 'explode');
    const doc: RawDocument = { _id: oid(1), creation_date: CREATED, tags: [oid(0x21), 'plain'], note: 'n' };
    assert.deepEqual(rows(doc), [
      { array: 'tags', itemId: oid(0x21), values: [oid(1), oid(0x21), 'tag', CREATED, 'n'] },
      { array: 'tags', itemId: 'plain', values: [oid(1), 'plain', 'tag', CREATED, 'n'] },
    ]);
  });

  test("a subdocument item: its id under item_id_key, its own date instead of the parent's (when it has one)", () => {
    const at = date('2024-03-01T08:00:00Z');
    const doc: RawDocument = {
      _id: oid(1),
      creation_date: CREATED,
      tags: null,
      visits: [{ place: oid(0x31), at }, { place: oid(0x32) }, { place: oid(0x33), at: null }, { at }, oid(0x34), { other: 1 }],
    };
    assert.deepEqual(rows(doc), [
      { array: 'visits', itemId: oid(0x31), values: [oid(1), oid(0x31), 'visit', at, undefined] },
      { array: 'visits', itemId: oid(0x32), values: [oid(1), oid(0x32), 'visit', CREATED, undefined] },
      { array: 'visits', itemId: oid(0x33), values: [oid(1), oid(0x33), 'visit', CREATED, undefined] },
      { array: 'visits', itemId: undefined, values: [oid(1), undefined, 'visit', at, undefined] },
      { array: 'visits', itemId: oid(0x34), values: [oid(1), oid(0x34), 'visit', CREATED, undefined] },
      { array: 'visits', itemId: undefined, values: [oid(1), undefined, 'visit', CREATED, undefined] },
    ]);
    assert.equal(lacksItemId(undefined), true);
    assert.equal(lacksItemId(null), true);
    assert.equal(lacksItemId(''), false);
  });

  test('absent or null arrays yield nothing; anything else refuses the whole document, arrays read first', () => {
    assert.deepEqual(rows({ _id: oid(1) }), []);
    assert.deepEqual(rows({ _id: oid(1), tags: [], visits: null }), []);
    const refused = rows({ _id: oid(1), tags: [oid(0x21)], visits: { place: oid(0x31) } });
    assert.ok(refused instanceof NotAnArray);
    assert.equal(refused.array.spec.field, 'visits');
    assert.equal(refused.array.spec.itemColumn, 'tag_id');
    assert.deepEqual(refused.value, { place: oid(0x31) });
  });

  test('which columns a parent decides (converted once a document), repeats found on the merge key', () => {
    const [tags, visits] = m.arrays;
    assert.deepEqual(tags!.origins, [Origin.Parent, Origin.Item, Origin.Item, Origin.Parent, Origin.Parent]);
    assert.deepEqual(visits!.origins, [Origin.Parent, Origin.Item, Origin.Item, Origin.ItemDate, Origin.Parent]);
    assert.deepEqual(
      m.repeatIndexes.map((i) => m.columns[i]!.name),
      ['person_id', 'tag_id', 'source'],
    );
  });

  test('the filter and the document key: rows belong to their parent document', () => {
    assert.equal(m.skip({ _id: oid(1) }), null);
    assert.equal(model.tables.get('people_tags')!.documentKey, 'person_id');
    assert.equal(m.columns[m.keyIndex]!.name, 'person_id');
    assert.equal(m.foldedAs, DUPLICATE_IN_ARRAY);
  });
});

describe('dedupe', () => {
  const m = mapping('logbook') as DedupeMapping;

  test('a row a document, without the SERIAL column; documents without a key field skipped, named after the field', () => {
    assert.equal(m.strategy, 'dedupe');
    const doc: RawDocument = { _id: oid(1), person: oid(9), day: date('2024-03-06T23:00:00Z'), update_date: UPDATED, score: { $numberInt: '3' } };
    assert.equal(m.skip(doc), null);
    assert.deepEqual(rowValues(m, doc), [oid(9), date('2024-03-06T23:00:00Z'), UPDATED, { $numberInt: '3' }]);
    assert.equal(m.skip({ ...doc, archived: true }), 'filtered', 'the filter first');
    assert.equal(m.skip({ ...doc, archived: true, person: null }), 'filtered');
    assert.equal(m.skip({ ...doc, person: null }), 'missing_person');
    assert.equal(m.skip({ ...doc, person: undefined, day: undefined }), 'missing_person', 'key order');
    assert.equal(m.skip({ ...doc, day: null }), 'missing_day');
    assert.equal(m.skip({ ...doc, score: null }), null, 'only key fields are required');
  });

  test('no document key (a row belongs to several documents); key and latest_by columns', () => {
    assert.equal(model.tables.get('logbook')!.documentKey, null);
    assert.equal(m.keyIndex, null);
    assert.deepEqual(
      m.keyIndexes.map((i) => m.columns[i]!.name),
      ['person_id', 'day'],
    );
    assert.equal(m.columns[m.latestIndex]!.name, 'updated_at');
    assert.equal(m.foldedAs, SUPERSEDED);
  });

  test('the latest wins: greater latest_by, then greater _id; NULL is the oldest', () => {
    assert.equal(latestOrder(model.tables.get('logbook')!), 'text');
    const t1 = '2024-03-08 17:00:00';
    const t2 = '2024-03-09 17:00:00';
    assert.equal(replacesKept(m, t2, 'a', t1, 'b'), true);
    assert.equal(replacesKept(m, t1, 'b', t2, 'a'), false);
    assert.equal(replacesKept(m, t2, 'b', t2, 'a'), true, 'a tie: the greater _id');
    assert.equal(replacesKept(m, t2, 'a', t2, 'b'), false);
    assert.equal(replacesKept(m, t2, 'a', t2, 'a'), false, 'the same document again changes nothing');
    assert.equal(replacesKept(m, null, 'z', t1, 'a'), false);
    assert.equal(replacesKept(m, t1, 'a', null, 'z'), true);
  });

  test('latest_by orders integers as integers, decimals as numbers, the rest as text', () => {
    const integer = cellComparer('integer');
    assert.ok(integer('10', '9') > 0);
    assert.ok(integer('9007199254740993', '9007199254740992') > 0, 'beyond 2^53');
    assert.ok(integer(null, '-5') < 0);
    assert.equal(integer(null, null), 0);
    const decimal = cellComparer('decimal');
    assert.ok(decimal('10.5', '9.75') > 0);
    assert.ok(decimal('-1', null) > 0);
    const text = cellComparer('text');
    assert.ok(text('2024-03-10', '2024-03-09') > 0);
    assert.ok(text('10', '9') < 0);
  });
});
