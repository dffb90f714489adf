// A table's DocumentFilter evaluated on the client (menus are the events whose `__t` is `menu`).
// The extract may read more documents than a table keeps (the collection's server filter is the OR
// of its tables' filters), so each table applies its own filter and counts what it leaves out.
import type { DocumentFilter, FilterCondition } from '../model/types.ts';
import { compilePath, kindOf, numberText, type RawDocument } from './ejson-value.ts';

type Scalar = string | number | boolean | null;

/** MongoDB equality between a stored value and a filter scalar; an array matches if an element does. */
function equals(stored: unknown, wanted: Scalar): boolean {
  const kind = kindOf(stored);
  if (kind === 'array') return (stored as unknown[]).some((item) => equals(item, wanted));
  if (wanted === null) return kind === 'null' || kind === 'missing';
  switch (typeof wanted) {
    case 'string':
      return stored === wanted;
    case 'boolean':
      return stored === wanted;
    case 'number': {
      let n: number;
      switch (kind) {
        case 'number':
          n = stored as number;
          break;
        case 'int32':
          n = Number(numberText(stored, '$numberInt'));
          break;
        case 'int64':
          n = Number(numberText(stored, '$numberLong'));
          break;
        case 'double':
          n = Number(numberText(stored, '$numberDouble'));
          break;
        case 'decimal128':
          n = Number(numberText(stored, '$numberDecimal'));
          break;
        default:
          return false;
      }
      return n === wanted;
    }
    default:
      return false;
  }
}

function matches(stored: unknown, condition: FilterCondition): boolean {
  switch (condition.op) {
    case 'eq':
      return equals(stored, condition.value);
    case 'ne':
      return !equals(stored, condition.value);
    case 'in':
      return condition.values.some((v) => equals(stored, v));
    case 'nin':
      return !condition.values.some((v) => equals(stored, v));
    case 'exists':
      return (stored !== undefined) === condition.value;
  }
}

/** Whether a document belongs to a table. */
export type DocumentTest = (doc: RawDocument) => boolean;

/** A predicate for the filter (null filter: every document passes). */
export function compileFilter(filter: DocumentFilter | null): DocumentTest | null {
  if (!filter) return null;
  const checks = Object.entries(filter.conditions).map(([path, condition]) => ({ read: compilePath(path), condition }));
  if (checks.length === 0) return null;
  return (doc) => checks.every((c) => matches(c.read(doc), c.condition));
}
