// The staged NDJSON's two reserved wrappers, for the values canonical Extended JSON cannot stage
// without ambiguity or loss (README, "Staging format"):
//
//   {"$etlDocument": {…}}        an embedded document with a key starting with `$`. Without it a real
//                                subdocument {"$numberInt": "7"} would read back as the Int32 7. The
//                                object inside holds the document's own keys, literally, and its
//                                values encoded by the same rules (so a document {"$etlDocument": 1}
//                                is itself escaped: {"$etlDocument": {"$etlDocument": {"$numberInt": "1"}}}).
//                                A DBRef ({"$ref", "$id"[, "$db"]}) stays as Extended JSON writes it:
//                                the specification reads it as a document.
//   {"$etlInvalidUtf8": "<b64>"} a BSON string whose bytes are not UTF-8 (a lone surrogate ED A0 80):
//                                the raw bytes in base64. A column reading it rejects the row
//                                (invalid_unicode); an unmapped field does no harm.
//
// A Date beyond what JavaScript holds (|ms| > 8.64e15) is staged in plain canonical form with its
// original milliseconds, {"$date": {"$numberLong": "<int64>"}}, where bson would write "NaN".
// The top-level document is never escaped: it cannot be mistaken for a value.
// Every other document is staged exactly as EJSON.stringify writes it (the fast path).
import { Code, DBRef, EJSON, type Document } from 'bson';

export const ESCAPED_DOCUMENT_KEY = '$etlDocument';
export const INVALID_UTF8_KEY = '$etlInvalidUtf8';

/**
 * Nesting limit of staged documents: a subdocument or array at more than this many levels below the
 * top-level document (level 0) rejects the document (`too_deep`). MongoDB itself stores no more than
 * 100 levels, so only a crafted or damaged dump goes deeper; the limit keeps every recursive reader
 * of the staged file (Extended JSON, the JSONB writer) far from the stack's end.
 */
export const MAX_NESTING_DEPTH = 100;

/** A BSON string value whose bytes are not valid UTF-8 (kept as bytes, staged in the escape wrapper). */
export class InvalidUtf8String {
  constructor(readonly bytes: Buffer) {}
}

/** A BSON Date whose milliseconds a JavaScript Date cannot hold (|ms| > 8.64e15): the original int64. */
export class WideDate {
  constructor(readonly millis: bigint) {}
}

export interface DocumentScan {
  /** A subdocument or array deeper than MAX_NESTING_DEPTH. */
  tooDeep: boolean;
  /** An embedded document with a `$` key, or a marker: the slow encoder is needed. */
  rewrite: boolean;
  /** A Date that decoded as Invalid Date (the caller recovers its int64 from the bytes). */
  invalidDate: boolean;
}

const isBsonValue = (v: object): boolean => typeof (v as { _bsontype?: unknown })._bsontype === 'string';

function hasDollarKey(doc: object): boolean {
  for (const key in doc) if (key.charCodeAt(0) === 36 /* $ */) return true;
  return false;
}

/** One pass over a decoded document: depth, escapes needed, Invalid Dates. Recursion is bounded by the depth limit. */
export function scanDocument(doc: Document): DocumentScan {
  const scan: DocumentScan = { tooDeep: false, rewrite: false, invalidDate: false };
  const visit = (v: unknown, depth: number): void => {
    if (typeof v !== 'object' || v === null || scan.tooDeep) return;
    if (v instanceof Date) {
      if (Number.isNaN(v.getTime())) scan.invalidDate = true;
      return;
    }
    if (v instanceof InvalidUtf8String || v instanceof WideDate) {
      scan.rewrite = true;
      return;
    }
    const children = childrenOf(v);
    if (children === null) return;
    if (depth > MAX_NESTING_DEPTH) {
      scan.tooDeep = true;
      return;
    }
    if (depth > 0 && !Array.isArray(v) && !isBsonValue(v) && hasDollarKey(v)) scan.rewrite = true;
    for (const child of children) visit(child, depth + 1);
  };
  for (const key in doc) visit(doc[key], 1);
  return scan;
}

/** The nested values of a container (array, document, DBRef, Code with scope), or null for a scalar. */
function childrenOf(v: object): unknown[] | null {
  if (Array.isArray(v)) return v;
  if (!isBsonValue(v)) return Object.values(v);
  if (v instanceof DBRef) return [v.oid, ...Object.values(v.fields)];
  if (v instanceof Code && v.scope) return [v.scope];
  return null;
}

function escapeValue(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || v instanceof Date) return v;
  if (v instanceof InvalidUtf8String) return { [INVALID_UTF8_KEY]: v.bytes.toString('base64') };
  if (v instanceof WideDate) return { $date: { $numberLong: v.millis.toString() } };
  if (Array.isArray(v)) return v.map(escapeValue);
  if (v instanceof DBRef) return new DBRef(v.collection, escapeValue(v.oid) as never, v.db, escapeFields(v.fields));
  if (v instanceof Code) return v.scope ? new Code(v.code, escapeValue(v.scope) as Document) : v;
  if (isBsonValue(v)) return v;
  const fields = escapeFields(v as Document);
  return hasDollarKey(v) ? { [ESCAPED_DOCUMENT_KEY]: fields } : fields;
}

/** A document's fields with their values escaped (the document itself is not wrapped: the caller decides). */
function escapeFields(doc: Document): Document {
  const out: Document = {};
  for (const key of Object.keys(doc)) {
    // A field named __proto__ is data, not the object's prototype.
    if (key === '__proto__') Object.defineProperty(out, key, { value: escapeValue(doc[key]), enumerable: true, writable: true, configurable: true });
    else out[key] = escapeValue(doc[key]);
  }
  return out;
}

/** One NDJSON line (with its newline). `scan` (from scanDocument) says whether the escapes are needed. */
export function encodeStagedDocument(doc: Document, scan: Pick<DocumentScan, 'rewrite'> | null): string {
  const value = scan?.rewrite ? escapeFields(doc) : doc;
  return `${EJSON.stringify(value, { relaxed: false })}\n`;
}
