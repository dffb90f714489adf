// The staged NDJSON's two reserved wrappers, for the values canonical Extended JSON cannot stage
// without ambiguity or loss (README, "Staging format"). Written by ndjson-writer.ts, read by
// transform/ejson-value.ts:
//
//   {"$etlDocument": {…}}        an embedded document with a key starting with `$`. Without it a real
//                                subdocument {"$numberInt": "7"} would read back as the Int32 7. The
//                                object inside holds the document's own keys, literally, and its
//                                values encoded by the same rules (so a document {"$etlDocument": 1}
//                                is itself escaped: {"$etlDocument": {"$etlDocument": {"$numberInt": "1"}}}).
//                                A DBRef ({"$ref", "$id"[, "$db"]}) is not escaped: the Extended JSON
//                                specification reads it as a document.
//   {"$etlInvalidUtf8": "<b64>"} a BSON string whose bytes are not UTF-8 (a lone surrogate ED A0 80):
//                                the raw bytes in base64. A column reading it rejects the row
//                                (invalid_unicode); an unmapped field does no harm.
//
// A Date beyond what JavaScript holds (|ms| > 8.64e15) is staged in plain canonical form with its
// original milliseconds, {"$date": {"$numberLong": "<int64>"}}, where bson would write "NaN".
// The top-level document is never escaped: it cannot be mistaken for a value.

export const ESCAPED_DOCUMENT_KEY = '$etlDocument';
export const INVALID_UTF8_KEY = '$etlInvalidUtf8';

/**
 * Nesting limit of staged documents: a subdocument or array at more than this many levels below the
 * top-level document (level 0) rejects the document (`too_deep`). MongoDB itself stores no more than
 * 100 levels, so only a crafted or damaged dump goes deeper; the limit keeps every recursive reader
 * of the staged file (Extended JSON, the JSONB writer) far from the stack's end.
 */
export const MAX_NESTING_DEPTH = 100;
