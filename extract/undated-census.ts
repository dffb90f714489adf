// The census of the documents no watermark can place: neither creation_date nor update_date is a
// date (missing, null, a string…). The incremental query reads them on every run (its `$nor` clause,
// see watermark-plan.ts), and the manifest counts them per collection with what the two fields
// held, so someone can fix the data. The test here is the query's: a field "is a date" when
// `{$type: "date"}` would match it (a Date, or an array holding one).
import type { Document } from 'bson';
import type { UndatedCensus } from '../staging/manifest-extract.ts';
import { bsonTypeAlias } from './document-match.ts';

export const DATE_FIELDS = ['creation_date', 'update_date'] as const;

function isDateLike(v: unknown): boolean {
  const alias = bsonTypeAlias(v);
  return alias === 'date' || (alias === 'array' && (v as unknown[]).some((item) => bsonTypeAlias(item) === 'date'));
}

export class UndatedCounter {
  private readonly census: UndatedCensus = { documents: 0, fields: { creation_date: {}, update_date: {} } };

  /** Counts the document when neither date field is a date; true when it was counted. */
  note(doc: Document): boolean {
    if (isDateLike(doc.creation_date) || isDateLike(doc.update_date)) return false;
    this.census.documents += 1;
    for (const field of DATE_FIELDS) {
      const kind = bsonTypeAlias(doc[field]) ?? 'missing';
      const counts = this.census.fields[field];
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
    return true;
  }

  result(): UndatedCensus {
    return this.census;
  }
}

/** The warning a non-empty census gives, naming the collection. */
export function undatedWarning(collection: string, census: UndatedCensus): string {
  const held = DATE_FIELDS.map((f) => `${f}: ${Object.entries(census.fields[f]).map(([kind, n]) => `${kind} ${n}`).join(', ')}`).join('; ');
  return (
    `collection "${collection}": ${census.documents} document(s) have neither a creation_date nor an update_date that is a date (${held}); ` +
    'no watermark can tell whether they changed, so every incremental run reads them again'
  );
}
