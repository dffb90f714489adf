// The census of the documents no watermark can place: update_date is not a date (missing, null, a
// string…), so no edit moves it. The incremental query reads them on every run (its `$nor` clause,
// see watermark-plan.ts), and the manifest counts them per collection with what the two fields
// held, so someone can fix the data. The test here is the query's: a field "is a date" when
// `{$type: "date"}` would match it (a Date, or an array holding one).
import type { UndatedCensus } from '../staging/manifest-extract.ts';
import type { FieldFacts, LineFacts } from '../staging/ndjson-writer.ts';

const DATE_FIELDS = ['creation_date', 'update_date'] as const;

/** `$type` aliases of the BSON type bytes (what the server's `$type` and the census call them). */
const TYPE_ALIASES: Readonly<Record<number, string>> = {
  0x01: 'double',
  0x02: 'string',
  0x03: 'object',
  0x04: 'array',
  0x05: 'binData',
  0x06: 'undefined',
  0x07: 'objectId',
  0x08: 'bool',
  0x09: 'date',
  0x0a: 'null',
  0x0b: 'regex',
  0x0c: 'dbPointer',
  0x0d: 'javascript',
  0x0e: 'symbol',
  0x0f: 'javascriptWithScope',
  0x10: 'int',
  0x11: 'timestamp',
  0x12: 'long',
  0x13: 'decimal',
  0xff: 'minKey',
  0x7f: 'maxKey',
};

function isDateLike(f: FieldFacts): boolean {
  return f.type === 0x09 || f.arrayHoldsDate;
}

export class UndatedCounter {
  private readonly census: UndatedCensus = { documents: 0, fields: { creation_date: {}, update_date: {} } };

  /** Counts the document when its update_date is not a date; true when it was counted. */
  note(facts: LineFacts): boolean {
    if (isDateLike(facts.updateDate)) return false;
    this.census.documents += 1;
    for (const field of DATE_FIELDS) {
      const type = (field === 'creation_date' ? facts.creationDate : facts.updateDate).type;
      const kind = type === 0 ? 'missing' : (TYPE_ALIASES[type] ?? 'unknown');
      const counts = this.census.fields[field];
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
    return true;
  }

  result(): UndatedCensus {
    return this.census;
  }
}

/** The warning a non-empty census gives (the collection's name goes before it, as before every warning of a collection). */
export function undatedWarning(census: UndatedCensus): string {
  const held = DATE_FIELDS.map((f) => `${f}: ${Object.entries(census.fields[f]).map(([kind, n]) => `${kind} ${n}`).join(', ')}`).join('; ');
  return (
    `${census.documents} document(s) have no update_date that is a date (${held}); ` +
    'no watermark can tell whether they changed, so every incremental run reads them again'
  );
}
