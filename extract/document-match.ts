// Applies a MongoDB query to a document on our side, for dumps (the live server applies the same
// query itself). Supports what extract sends: $and/$or/$nor, field equality, $eq $ne $in $nin
// $exists $type $not and the comparisons of the incremental filter ($gte $gt $lt $lte on dates and
// ObjectIds), with the server's rules for missing fields, null, arrays and numbers of different BSON
// types.
import { Decimal128, Double, Int32, Long, ObjectId } from 'bson';
import { ConfigError } from '../errors/etl-error.ts';
import { compareBson, WideDate } from './bson-order.ts';

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

/** A string's or an ObjectId's identity for a set lookup; null for any other value (matched one by one). */
function setKey(v: unknown): string | null {
  if (typeof v === 'string') return `s${v}`;
  if (v instanceof ObjectId) return `o${v.toHexString()}`;
  return null;
}

interface InSet {
  readonly keys: ReadonlySet<string>;
  readonly others: readonly unknown[];
}

// A dump's read asks every document the same $in list (the documents asked for again can be thousands):
// its strings and ObjectIds are looked up in a set built once per list.
const inSets = new WeakMap<readonly unknown[], InSet>();

function inSetOf(list: readonly unknown[]): InSet {
  let set = inSets.get(list);
  if (!set) {
    const keys = new Set<string>();
    const others: unknown[] = [];
    for (const w of list) {
      const k = setKey(w);
      if (k === null) others.push(w);
      else keys.add(k);
    }
    inSets.set(list, (set = { keys, others }));
  }
  return set;
}

/** `$in`: the value (or, for an array, the array itself or any element) equals one of the list's. */
function matchesIn(value: unknown, list: readonly unknown[]): boolean {
  const { keys, others } = inSetOf(list);
  const hit = (v: unknown) => {
    const k = setKey(v);
    return k !== null && keys.has(k);
  };
  if (hit(value) || (Array.isArray(value) && value.some(hit))) return true;
  return others.some((w) => matchesEq(value, w));
}

/**
 * The `$type` alias of a value as deserialized with BSON_READ_OPTIONS (wrapper classes kept), or
 * null for a missing field. The same names the server uses, so a census and a query agree.
 */
function bsonTypeAlias(v: unknown): string | null {
  if (v === MISSING || v === undefined) return null;
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'number':
    case 'bigint':
      return 'double';
    default:
  }
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date || v instanceof WideDate) return 'date';
  const tag = (v as { _bsontype?: unknown })._bsontype;
  return typeof tag === 'string' ? (BSON_TYPE_ALIASES[tag] ?? 'object') : 'object';
}

const BSON_TYPE_ALIASES: Readonly<Record<string, string>> = {
  Int32: 'int',
  Double: 'double',
  Long: 'long',
  Decimal128: 'decimal',
  ObjectId: 'objectId',
  Binary: 'binData',
  Timestamp: 'timestamp',
  BSONRegExp: 'regex',
  BSONSymbol: 'symbol',
  Code: 'javascript',
  MinKey: 'minKey',
  MaxKey: 'maxKey',
  DBRef: 'object',
};

const NUMBER_ALIASES = new Set(['int', 'long', 'double', 'decimal']);

function hasType(v: unknown, alias: string): boolean {
  const own = bsonTypeAlias(v);
  if (own === null) return false;
  if (own === alias || (alias === 'number' && NUMBER_ALIASES.has(own))) return true;
  // `{$type: 'date'}` also matches an array holding a date, as on the server.
  return Array.isArray(v) && v.some((item) => !Array.isArray(item) && hasType(item, alias));
}

function matchesType(values: unknown[], arg: unknown): boolean {
  const aliases = Array.isArray(arg) ? arg : [arg];
  for (const a of aliases) {
    if (typeof a !== 'string') throw new ConfigError(`$type ${JSON.stringify(a)} cannot be applied to a dump (use type names such as "date")`);
  }
  return values.some((v) => (aliases as string[]).some((a) => hasType(v, a)));
}

function bracketOf(v: unknown): string | null {
  if (v instanceof Date || v instanceof WideDate) return 'date';
  if (isNumeric(v)) return 'number';
  if (typeof v === 'string') return 'string';
  if (v instanceof ObjectId) return 'objectId';
  return null;
}

/** Comparisons only match values of the same type bracket (a date bound matches dates only). */
function matchesRange(value: unknown, op: string, bound: unknown): boolean {
  const candidates = Array.isArray(value) ? value : [value];
  return candidates.some((v) => {
    if (v === MISSING || v === undefined) return false;
    const bracket = bracketOf(bound);
    if (bracket === null || bracketOf(v) !== bracket) return false;
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
        ok = values.some((v) => matchesIn(v, arg as unknown[]));
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
      case '$type':
        ok = matchesType(values, arg);
        break;
      case '$not':
        if (!isOperatorObject(arg)) throw new ConfigError('$not needs an operator document (e.g. {$not: {$type: "date"}}) to be applied to a dump');
        ok = !matchesOperators(values, arg);
        break;
      default:
        throw new ConfigError(`filter operator ${op} cannot be applied to a dump (supported: $eq $ne $in $nin $exists $type $not $gt $gte $lt $lte)`);
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

/** The top-level fields a query reads (so only those are decoded to match it). */
export function queryFieldNames(query: Query): Set<string> {
  const names = new Set<string>();
  const visit = (q: Query) => {
    for (const [key, cond] of Object.entries(q)) {
      if (key === '$and' || key === '$or' || key === '$nor') for (const sub of cond as Query[]) visit(sub);
      else if (!key.startsWith('$')) names.add(key.split('.')[0]!);
    }
  };
  visit(query);
  return names;
}
