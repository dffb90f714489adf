// How the staged files and etl_claims name a document (its identity): an ObjectId `_id` as its 24 hex
// digits, any other `_id` as its canonical Extended JSON (transform/rejects.ts documentIdText writes
// it, so `"77"` and Int32 77 stay apart). Read back, it is the `_id` MongoDB holds, to ask for by `_id`.
import { EJSON, ObjectId } from 'bson';

const OBJECT_ID_HEX = /^[0-9a-f]{24}$/;

/** An identity back as the `_id` value it names. */
export function documentIdValue(identity: string): unknown {
  return OBJECT_ID_HEX.test(identity) ? ObjectId.createFromHexString(identity) : EJSON.parse(identity, { relaxed: false });
}
