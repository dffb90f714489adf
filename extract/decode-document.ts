// One document's BSON bytes → the value extract stages, or the reason it cannot be staged, the same
// way for the live server and for dumps. The common case is bson's own decoding; a document bson
// refuses (a string that is not UTF-8) or decodes with loss (a Date beyond JavaScript's range) is
// looked at byte by byte (bson-elements.ts) so that the value is staged unambiguously instead of
// aborting the run or turning into "NaN"; a document that cannot be staged at all is rejected alone
// (reason, `_id` when it has one) and the run goes on. Bytes that are not BSON still stop the run.
import { deserialize, type Document } from 'bson';
import { BSON_READ_OPTIONS } from '../staging/ndjson.ts';
import { InvalidUtf8String, MAX_NESTING_DEPTH, scanDocument, WideDate, type DocumentScan } from '../staging/ndjson-escape.ts';
import { analyzeBytes, setAtPath, topLevelId, type ByteFindings } from './bson-elements.ts';

/** Why extract could not stage a document (the `reason` of extract/<collection>.rejects.ndjson). */
export type ExtractRejectReason = 'missing_id' | 'too_deep' | 'invalid_utf8' | 'invalid_id';

export type Decoded =
  | { readonly ok: true; readonly doc: Document; readonly scan: DocumentScan }
  | { readonly ok: false; readonly id: unknown; readonly reason: ExtractRejectReason; readonly detail: string };

const LENIENT_OPTIONS = Object.freeze({ ...BSON_READ_OPTIONS, validation: { utf8: false as const } });

export const TOO_DEEP_DETAIL = `subdocuments or arrays nested more than ${MAX_NESTING_DEPTH} levels deep`;

/** Decodes a document; `fail(cause)` builds the error for bytes that are not BSON (naming file and offset, or collection). */
export function decodeForStaging(bytes: Uint8Array, fail: (cause: unknown) => Error): Decoded {
  let doc: Document;
  try {
    doc = deserialize(bytes, BSON_READ_OPTIONS);
  } catch (cause) {
    return decodeSlowly(bytes, cause, fail);
  }
  const scan = scanDocument(doc);
  if (scan.invalidDate && !scan.tooDeep) {
    const findings = analyze(bytes, fail);
    for (const d of findings.wideDates) setAtPath(doc, d.path, new WideDate(d.millis));
    scan.rewrite = true;
  }
  return { ok: true, doc, scan };
}

function analyze(bytes: Uint8Array, fail: (cause: unknown) => Error): ByteFindings {
  try {
    return analyzeBytes(bytes, MAX_NESTING_DEPTH);
  } catch (cause) {
    throw fail(cause);
  }
}

/** bson refused the document: find out why from the bytes; stage what can be staged, reject what cannot. */
function decodeSlowly(bytes: Uint8Array, original: unknown, fail: (cause: unknown) => Error): Decoded {
  const findings = analyze(bytes, fail);
  if (findings.tooDeep) return { ok: false, id: topLevelId(bytes), reason: 'too_deep', detail: TOO_DEEP_DETAIL };
  if (findings.unstageable) return { ok: false, id: topLevelId(bytes), reason: 'invalid_utf8', detail: `invalid UTF-8 in ${findings.unstageable}` };
  if (findings.invalidStrings.length === 0) throw fail(original);
  let doc: Document;
  try {
    doc = deserialize(bytes, LENIENT_OPTIONS);
  } catch (cause) {
    throw fail(cause);
  }
  for (const s of findings.invalidStrings) setAtPath(doc, s.path, new InvalidUtf8String(s.bytes));
  for (const d of findings.wideDates) setAtPath(doc, d.path, new WideDate(d.millis));
  const scan = scanDocument(doc);
  scan.rewrite = true;
  return { ok: true, doc, scan };
}
