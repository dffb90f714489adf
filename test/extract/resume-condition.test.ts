// The condition a resumed live cursor adds: every _id the server sorts after the last one handed
// out — the rest of its own type and every later type (MongoDB sorts by BSON type first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Double, Int32, MaxKey, ObjectId } from 'bson';
import { resumeCondition } from '../../extract/live-source.ts';
import { CORE_TYPE_ALIASES } from '../../extract/bson-order.ts';

test('after a number: greater numbers, then strings, documents, binary, ObjectIds and every later type', () => {
  assert.deepEqual(resumeCondition(new Int32(5), null), {
    $or: [
      { _id: { $gt: new Int32(5) } },
      { _id: { $type: ['string', 'symbol', 'object', 'array', 'binData', 'objectId', 'bool', 'date', 'timestamp', 'regex', 'dbPointer', 'javascript', 'javascriptWithScope', 'maxKey'] } },
    ],
  });
  // A server that does not know some aliases (FerretDB) cannot store those types: the known ones only.
  assert.deepEqual(resumeCondition(new Int32(5), CORE_TYPE_ALIASES), {
    $or: [{ _id: { $gt: new Int32(5) } }, { _id: { $type: ['string', 'object', 'array', 'binData', 'objectId', 'bool', 'date', 'timestamp', 'regex'] } }],
  });
});

test('after a string, an ObjectId, NaN, null and MaxKey', () => {
  assert.deepEqual(resumeCondition('s0010', CORE_TYPE_ALIASES), {
    $or: [{ _id: { $gt: 's0010' } }, { _id: { $type: ['object', 'array', 'binData', 'objectId', 'bool', 'date', 'timestamp', 'regex'] } }],
  });
  const oid = new ObjectId('65f000000000000000000001');
  assert.deepEqual(resumeCondition(oid, CORE_TYPE_ALIASES), { $or: [{ _id: { $gt: oid } }, { _id: { $type: ['bool', 'date', 'timestamp', 'regex'] } }] });
  // NaN sorts before every other number and `$gt: NaN` matches nothing: every number but NaN.
  assert.deepEqual((resumeCondition(new Double(Number.NaN), CORE_TYPE_ALIASES).$or as object[])[0], { _id: { $gte: -Infinity } });
  // One null _id at most: only later types.
  assert.deepEqual(resumeCondition(null, CORE_TYPE_ALIASES), { _id: { $type: ['number', 'string', 'object', 'array', 'binData', 'objectId', 'bool', 'date', 'timestamp', 'regex'] } });
  assert.deepEqual(resumeCondition(new MaxKey(), null), { _id: { $in: [] } });
});
