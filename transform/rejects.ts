// One line of `<table>.rejects.ndjson`: the source document, the column, the offending value and why.
// The value is its canonical Extended JSON text, shortened in this file only (the full value is in
// the extract, under the same _id).
import { rejection, type Rejection } from '../mapping/convert.ts';
import { keyTextTooLong } from '../mapping/key-size.ts';
import { canonicalText, kindOf, objectIdHex } from '../mapping/ejson-value.ts';
import { shortText } from '../staging/short-text.ts';

const VALUE_LIMIT = 200;

export interface RejectLine {
  readonly collection: string;
  /** 24 lower-case hex for an ObjectId, else the canonical Extended JSON text of the _id. */
  readonly _id: string;
  readonly table: string;
  readonly column: string;
  /** Canonical Extended JSON of the value (≤ 200 characters + '…'), or null when the field is absent. */
  readonly value: string | null;
  readonly reason: string;
}

/**
 * The last `_id` named and its text. Every table of a collection names the same document in turn
 * (its keys file), the same parsed value, never changed: its text is made once, not once a table.
 */
let lastId: unknown = Symbol('no _id named yet');
let lastIdText = '';

export function documentIdText(id: unknown): string {
  if (id === lastId) return lastIdText;
  const text = kindOf(id) === 'objectId' ? (objectIdHex(id) ?? canonicalText(id)) : canonicalText(id);
  // Only objects are remembered: a string or a number `_id` is compared by value, and its text is cheap.
  if (typeof id === 'object' && id !== null) {
    lastId = id;
    lastIdText = text;
  }
  return text;
}

/**
 * A document's `_id` as a dedupe table's keys and contributions name it (documentIdText, whose
 * canonical Extended JSON keeps `"77"` and Int32 77 apart); refused when PostgreSQL could not store
 * it (a NUL character) or index it (mapping/key-size.ts).
 */
export function documentIdKey(id: unknown): string | Rejection {
  const text = documentIdText(id);
  if (text.includes('\u0000')) return rejection('nul_character');
  return keyTextTooLong(text) ? rejection('key_too_long') : text;
}

export function shortValue(value: unknown): string | null {
  if (value === undefined) return null;
  return shortText(canonicalText(value), VALUE_LIMIT);
}

/** The NDJSON line, keys in a fixed order so the file's bytes are stable. */
export function rejectLine(r: RejectLine): string {
  return `${JSON.stringify({ collection: r.collection, _id: r._id, table: r.table, column: r.column, value: r.value, reason: r.reason })}\n`;
}
