// The client-side query used for dumps must agree with the server on the filters extract sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Double, Int32, Long, ObjectId } from 'bson';
import { matchesQuery } from '../../extract/document-match.ts';

test('equality, null and missing fields, arrays, numbers across BSON types', () => {
  const doc = { a: 'x', n: new Int32(5), d: new Double(5), l: Long.fromNumber(5), tags: ['p', 'q'], nil: null, sub: { k: 'v' }, list: [{ k: 1 }, { k: 2 }] };
  assert.ok(matchesQuery(doc, { a: 'x' }));
  assert.ok(!matchesQuery(doc, { a: 'y' }));
  assert.ok(matchesQuery(doc, { n: 5, d: 5, l: 5 }));
  assert.ok(matchesQuery(doc, { tags: 'q' }));
  assert.ok(matchesQuery(doc, { missing: null }) && matchesQuery(doc, { nil: null }));
  assert.ok(!matchesQuery(doc, { missing: { $ne: null } }) && matchesQuery(doc, { a: { $ne: null } }));
  assert.ok(matchesQuery(doc, { missing: { $exists: false } }) && matchesQuery(doc, { nil: { $exists: true } }));
  assert.ok(matchesQuery(doc, { a: { $in: ['z', 'x'] } }) && !matchesQuery(doc, { a: { $nin: ['z', 'x'] } }));
  assert.ok(matchesQuery(doc, { missing: { $in: [null] } }));
  assert.ok(!matchesQuery(doc, { tags: { $nin: ['q'] } }));
  assert.ok(matchesQuery(doc, { 'sub.k': 'v' }) && matchesQuery(doc, { 'list.k': 2 }));
  assert.ok(matchesQuery(doc, { $or: [{ a: 'no' }, { n: 5 }] }) && !matchesQuery(doc, { $and: [{ a: 'x' }, { n: 6 }] }));
});

test('date bounds match only dates, inclusively', () => {
  const w = new Date('2024-03-01T00:00:00Z');
  const q = { $or: [{ creation_date: { $gte: w } }, { update_date: { $gte: w } }] };
  assert.ok(matchesQuery({ creation_date: w }, q), 'exactly at the watermark');
  assert.ok(matchesQuery({ creation_date: new Date(0), update_date: new Date(w.getTime() + 1) }, q));
  assert.ok(!matchesQuery({ creation_date: new Date(w.getTime() - 1) }, q));
  assert.ok(!matchesQuery({ creation_date: '2025-01-01' }, q), 'a string is not a date');
  assert.ok(!matchesQuery({}, q));
});

test('$type and $not as the server reads them: missing fields, arrays holding a date, several aliases', () => {
  const d = new Date('2024-01-01T00:00:00Z');
  assert.ok(matchesQuery({ a: d }, { a: { $type: 'date' } }));
  assert.ok(matchesQuery({ a: [1, d] }, { a: { $type: 'date' } }), 'an array holding a date');
  assert.ok(!matchesQuery({ a: '2024-01-01' }, { a: { $type: 'date' } }));
  assert.ok(!matchesQuery({}, { a: { $type: 'date' } }));
  assert.ok(matchesQuery({ a: new Int32(1) }, { a: { $type: 'number' } }) && matchesQuery({ a: Long.fromNumber(1) }, { a: { $type: ['string', 'long'] } }));
  assert.ok(matchesQuery({ a: new ObjectId() }, { a: { $type: ['objectId'] } }) && matchesQuery({ a: [1] }, { a: { $type: 'array' } }));
  assert.ok(matchesQuery({ a: null }, { a: { $type: 'null' } }) && matchesQuery({ a: { x: 1 } }, { a: { $type: 'object' } }));
  // $not matches a missing field too.
  assert.ok(matchesQuery({}, { a: { $not: { $type: 'date' } } }));
  assert.ok(matchesQuery({ a: 'x' }, { a: { $not: { $type: 'date' } } }));
  assert.ok(!matchesQuery({ a: d }, { a: { $not: { $type: 'date' } } }));
  const undated = { $nor: [{ creation_date: { $type: 'date' } }, { update_date: { $type: 'date' } }] };
  assert.ok(matchesQuery({ creation_date: 'yesterday' }, undated));
  assert.ok(!matchesQuery({ creation_date: 'yesterday', update_date: d }, undated));
});

test('ObjectId bounds match only ObjectIds, by their bytes (so by their time first)', () => {
  const bound = ObjectId.createFromTime(1_700_000_000);
  const q = { _id: { $gte: bound } };
  assert.ok(matchesQuery({ _id: bound }, q), 'inclusive');
  assert.ok(matchesQuery({ _id: ObjectId.createFromTime(1_700_000_001) }, q));
  assert.ok(!matchesQuery({ _id: new ObjectId('6553f0ffffffffffffffffff') }, q), 'one second earlier');
  assert.ok(!matchesQuery({ _id: 'zzzz' }, q) && !matchesQuery({ _id: new Int32(5) }, q), 'other types never match');
});

test('$in over thousands of _ids (the documents asked for again): a set lookup keeping types apart, as the server does', () => {
  const ids = Array.from({ length: 20_000 }, (_, i) => ObjectId.createFromTime(1_600_000_000 + i));
  const wanted = ids[12_345]!;
  const list = [...ids.filter((_, i) => i % 2 === 1), 'abc', 77, Long.fromNumber(2 ** 60), null];
  const q = { _id: { $in: list } };
  assert.ok(matchesQuery({ _id: ObjectId.createFromHexString(wanted.toHexString()) }, q), 'an ObjectId in the list (another instance)');
  assert.ok(!matchesQuery({ _id: ids[12_344]! }, q), 'an ObjectId not in the list');
  assert.ok(!matchesQuery({ _id: wanted.toHexString() }, q), 'a string of the same hex is not the ObjectId');
  assert.ok(!matchesQuery({ _id: ObjectId.createFromHexString('6162630000000000000000ab') }, q));
  assert.ok(matchesQuery({ _id: 'abc' }, q) && !matchesQuery({ _id: 'abd' }, q), 'strings');
  assert.ok(matchesQuery({ _id: new Int32(77) }, q) && matchesQuery({ _id: new Double(77) }, q) && !matchesQuery({ _id: '77' }, q), 'numbers across BSON types, not their text');
  assert.ok(matchesQuery({ _id: Long.fromNumber(2 ** 60) }, q), 'an Int64');
  assert.ok(matchesQuery({ other: 1 }, { missing: { $in: list } }), 'null matches a missing field');
  assert.ok(matchesQuery({ tags: ['x', 'abc'] }, { tags: { $in: list } }) && !matchesQuery({ tags: ['x'] }, { tags: { $in: list } }), 'an array matches by any element');
});
