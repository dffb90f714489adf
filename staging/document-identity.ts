// How the staged files and etl_claims name a document (its identity): an ObjectId `_id` as its 24 hex
// digits, any other `_id` as its canonical Extended JSON (transform/rejects.ts documentIdText writes
// it, so `"77"` and Int32 77 stay apart). Read back, it is the `_id` MongoDB holds, to ask for by `_id`.
import { EJSON, Long, ObjectId } from 'bson';

/** The identity of an ObjectId `_id` (also as a PostgreSQL regular expression: load/claims.ts). */
export const OBJECT_ID_IDENTITY_PATTERN = '^[0-9a-f]{24}$';
const OBJECT_ID_HEX = new RegExp(OBJECT_ID_IDENTITY_PATTERN);

/** An identity back as the `_id` value it names. */
export function documentIdValue(identity: string): unknown {
  return OBJECT_ID_HEX.test(identity) ? ObjectId.createFromHexString(identity) : EJSON.parse(identity, { relaxed: false });
}

/**
 * The identity of the document a key's text most likely came from when nothing recorded it (no
 * claim): an ObjectId's for 24 hex digits, else a string `_id`'s (its canonical Extended JSON).
 */
export function guessedIdentity(keyText: string): string {
  return OBJECT_ID_HEX.test(keyText) ? keyText : JSON.stringify(keyText);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * The `_id` values a row's key text may have come from, when nothing recorded which: an ObjectId's
 * for 24 hex digits, a number's for a number's canonical text, and always a string's. Asking for
 * each reads at most a few documents more; a key's text never tells its type.
 */
export function keyIdValues(keyText: string): unknown[] {
  if (OBJECT_ID_HEX.test(keyText)) return [ObjectId.createFromHexString(keyText), keyText];
  if (/^-?\d+$/.test(keyText) && !Number.isSafeInteger(Number(keyText))) {
    const big = BigInt(keyText);
    return big >= INT64_MIN && big <= INT64_MAX ? [Long.fromBigInt(big), keyText] : [keyText];
  }
  const n = Number(keyText);
  return keyText.trim() !== '' && String(n) === keyText ? [n, keyText] : [keyText];
}
