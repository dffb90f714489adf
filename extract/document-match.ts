// Applies a MongoDB query to a document on our side, for dumps (the live server applies the same
// query itself). Supports what extract sends: $and/$or/$nor, field equality, $eq $ne $in $nin
// $exists and the date comparisons of the incremental filter ($gte $gt $lt $lte), with the server's
// rules for missing fields, null, arrays and numbers of different BSON types.
import { Decimal128, Double, Int32, Long, ObjectId } from 'bson';
import { ConfigError } from '../model/errors.ts';
import { compareBson } from './bson-order.ts';

type Query = Readonly<Record<string, unknown>>;
const MISSING = Symbol('missing');

/** The values a dotted path reaches: several when it crosses an array of subdocuments. */
function valuesAt(doc: unknown, path: readonly string[]): unknown[] {
  if (path.length === 0) return [doc];
  if (doc === null || typeof doc !== 'object') return [MISSING];
  if (Array.isArray(doc)) {
    const out: unknown[] = [];
    for (const item of doc) if (item !== null && typeof item === 'object' && !Array.isArray(item)) out.push(...valuesAt(item, path));
    return out.length ? out : [MISSING];
  }
  const [head, ...rest] = path;
  const rec = doc as Record<string, unknown>;
  if (!Object.prototype.hasOwnProperty.call(rec, head!)) return [MISSING];
  return valuesAt(rec[head!], rest);
}

function isNumeric(v: unknown): boolean {
  return typeof v === 'number' || v instanceof Int32 || v instanceof Double || v instanceof Long || v instanceof Decimal128;
}

/** Equality as the server sees it: numbers across BSON types, null matching a missing field. */
function equalsScalar(value: unknown, wanted: unknown): boolean {
  if (wanted === null) return value === null || value === undefined || value === MISSING;
  if (value === MISSING) return false;
  if (isNumeric(wanted) && isNumeric(value)) return compareBson(value, wanted) === 0;
  if (wanted instanceof Date) return value instanceof Date && value.getTime() === wanted.getTime();
  if (wanted instanceof ObjectId) return value instanceof ObjectId && value.equals(wanted);
  if (typeof wanted === 'object') return false;
  return value === wanted;
}

/** An array field matches when the array itself or any element does. */
function matchesEq(value: unknown, wanted: unknown): boolean {
  if (Array.isArray(value)) return value.some((v) => equalsScalar(v, wanted));
  return equalsScalar(value, wanted);
}

/** Comparisons only match values of the same type bracket (a date bound matches dates only). */
function matchesRange(value: unknown, op: string, bound: unknown): boolean {
  const candidates = Array.isArray(value) ? value : [value];
  return candidates.some((v) => {
    if (v === MISSING || v === undefined) return false;
    const sameBracket = (bound instanceof Date && v instanceof Date) || (isNumeric(bound) && isNumeric(v)) || (typeof bound === 'string' && typeof v === 'string');
    if (!sameBracket) return false;
    const c = compareBson(v, bound);
    return op === '$gte' ? c >= 0 : op === '$gt' ? c > 0 : op === '$lt' ? c < 0 : c <= 0;
  });
}

function matchesOperators(values: unknown[], ops: Record<string, unknown>): boolean {
  for (const [op, arg] of Object.entries(ops)) {
    let ok: boolean;
    switch (op) {
      case '$eq':
        ok = values.some((v) => matchesEq(v, arg));
        break;
      case '$ne':
        ok = !values.some((v) => matchesEq(v, arg));
        break;
      case '$in':
        ok = (arg as unknown[]).some((w) => values.some((v) => matchesEq(v, w)));
        break;
      case '$nin':
        ok = !(arg as unknown[]).some((w) => values.some((v) => matchesEq(v, w)));
        break;
      case '$exists':
        ok = values.some((v) => v !== MISSING) === Boolean(arg);
        break;
      case '$gte':
      case '$gt':
      case '$lt':
      case '$lte':
        ok = values.some((v) => matchesRange(v, op, arg));
        break;
      default:
        throw new ConfigError(`filter operator ${op} cannot be applied to a dump (supported: $eq $ne $in $nin $exists $gt $gte $lt $lte)`);
    }
    if (!ok) return false;
  }
  return true;
}

function isOperatorObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Date || v instanceof ObjectId) return false;
  const keys = Object.keys(v);
  return keys.length > 0 && keys.every((k) => k.startsWith('$'));
}

/** True when `doc` matches the MongoDB query `query`. */
export function matchesQuery(doc: Record<string, unknown>, query: Query): boolean {
  for (const [key, cond] of Object.entries(query)) {
    if (key === '$and') {
      if (!(cond as Query[]).every((q) => matchesQuery(doc, q))) return false;
    } else if (key === '$or') {
      if (!(cond as Query[]).some((q) => matchesQuery(doc, q))) return false;
    } else if (key === '$nor') {
      if ((cond as Query[]).some((q) => matchesQuery(doc, q))) return false;
    } else if (key.startsWith('$')) {
      throw new ConfigError(`query operator ${key} cannot be applied to a dump`);
    } else {
      const values = valuesAt(doc, key.split('.'));
      const ok = isOperatorObject(cond) ? matchesOperators(values, cond) : values.some((v) => matchesEq(v, cond));
      if (!ok) return false;
    }
  }
  return true;
}

/** Keeps the projected top-level fields, in the document's own order (as the server does). */
export function projectDocument(doc: Record<string, unknown>, fields: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(doc)) if (fields.has(key)) out[key] = doc[key];
  return out;
}
