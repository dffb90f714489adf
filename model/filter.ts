// `filter:` of a table: a small, MongoDB-compatible document filter, checked on its YAML nodes so
// a bad operator names its line. Only what transform can also evaluate on a document is accepted,
// because the same filter runs on the server (extract) and again per table (transform).
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import type { DocumentFilter, FilterCondition } from './types.ts';
import { describeNode, INVALID, type LintContext, type Path, type Position } from './field-spec.ts';

type FilterValue = string | number | boolean | null;

const FILTER_OPERATORS: readonly string[] = Object.freeze(['$eq', '$ne', '$in', '$nin', '$exists']);

function scalarValue(node: Node | null): FilterValue | typeof INVALID {
  if (!isScalar(node)) return INVALID;
  const v = node.value;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number' && Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v))) return v;
  return INVALID;
}

/**
 * What a refused filter value is, in words. A number YAML cannot read as the number written is said
 * as written: 9007199254740993 reads as the double 9007199254740992 (a filter would match another
 * number), 1e400 as Infinity.
 */
function describeFilterValue(node: Node | null): string {
  if (!isScalar(node) || typeof node.value !== 'number') return describeNode(node);
  const written = node.source ?? String(node.value);
  if (!Number.isFinite(node.value)) return `the number ${written}, beyond what a number holds`;
  if (Number.isInteger(node.value) && !Number.isSafeInteger(node.value)) {
    return `the number ${written}, which cannot be matched exactly (YAML reads it as ${node.value}; a filter's integers are exact up to ±9007199254740991; quote it if the field holds it as text)`;
  }
  return describeNode(node);
}

/** Decodes a `filter:` node into a DocumentFilter, or records findings and returns INVALID. */
export function decodeFilter(rawNode: Node, path: Path, ctx: LintContext): DocumentFilter | null | typeof INVALID {
  const node = ctx.resolve(rawNode);
  if (isScalar(node) && node.value === null) return null;
  if (!isMap(node)) {
    ctx.add(path, 'bad_filter', `expected a map of field → value or { $in | $nin | $ne | $exists | $eq }, got ${describeNode(node)}`);
    return INVALID;
  }
  const conditions: Record<string, FilterCondition> = {};
  const mongoQuery: Record<string, unknown> = {};
  let ok = true;
  for (const pair of node.items) {
    const keyNode = ctx.resolve(pair.key as Node);
    const field = isScalar(keyNode) ? String(keyNode.value) : '';
    const fieldPath = [...path, field];
    ctx.recordKey(fieldPath, ctx.positionOf(keyNode));
    if (field === '' || field.startsWith('$')) {
      ctx.add(fieldPath, 'bad_filter', `filter keys are document fields; ${field ? `operator ${JSON.stringify(field)} is not supported here` : 'got an empty key'} (supported operators, under a field: ${FILTER_OPERATORS.join(', ')})`, ctx.positionOf(keyNode));
      ok = false;
      continue;
    }
    const valueNode = ctx.resolve(pair.value as Node);
    ctx.recordValue(fieldPath, ctx.positionOf(valueNode));
    const condition = decodeCondition(valueNode, fieldPath, ctx);
    if (condition === INVALID) {
      ok = false;
      continue;
    }
    conditions[field] = condition;
    mongoQuery[field] = toMongo(condition);
  }
  if (!ok) return INVALID;
  if (Object.keys(conditions).length === 0) {
    ctx.add(path, 'bad_filter', 'an empty filter matches every document: remove `filter:` instead');
    return INVALID;
  }
  return { conditions, mongoQuery };
}

function decodeCondition(node: Node | null, path: Path, ctx: LintContext): FilterCondition | typeof INVALID {
  if (isScalar(node)) {
    const value = scalarValue(node);
    if (value === INVALID) {
      ctx.add(path, 'bad_filter', `expected a string, number, boolean or null, got ${describeFilterValue(node)}`);
      return INVALID;
    }
    return { op: 'eq', value };
  }
  if (!isMap(node)) {
    ctx.add(path, 'bad_filter', `expected a value or one operator (${FILTER_OPERATORS.join(', ')}), got ${describeNode(node)}`);
    return INVALID;
  }
  if (node.items.length !== 1) {
    ctx.add(path, 'bad_filter', `expected exactly one operator (${FILTER_OPERATORS.join(', ')}), got ${node.items.length}`);
    return INVALID;
  }
  const pair = node.items[0]!;
  const opNode = ctx.resolve(pair.key as Node);
  const op = isScalar(opNode) ? String(opNode.value) : '';
  const opPath = [...path, op];
  const opPos = ctx.positionOf(opNode);
  ctx.recordKey(opPath, opPos);
  const valueNode = ctx.resolve(pair.value as Node);
  ctx.recordValue(opPath, ctx.positionOf(valueNode));
  return decodeOperator(op, valueNode, opPath, opPos, ctx);
}

/** `{ $op: value }` of one filter field. */
function decodeOperator(op: string, valueNode: Node | null, opPath: Path, opPos: Position | null, ctx: LintContext): FilterCondition | typeof INVALID {
  switch (op) {
    case '$eq':
    case '$ne': {
      const value = scalarValue(valueNode);
      if (value === INVALID) {
        ctx.add(opPath, 'bad_filter', `${op} expects a string, number, boolean or null, got ${describeFilterValue(valueNode)}`);
        return INVALID;
      }
      return { op: op === '$eq' ? 'eq' : 'ne', value };
    }
    case '$in':
    case '$nin': {
      if (!isSeq(valueNode)) {
        ctx.add(opPath, 'bad_filter', `${op} expects a list of values, got ${describeNode(valueNode)}`);
        return INVALID;
      }
      const values: FilterValue[] = [];
      for (const [i, item] of valueNode.items.entries()) {
        const v = scalarValue(ctx.resolve(item as Node));
        if (v === INVALID) {
          ctx.add([...opPath, i], 'bad_filter', `${op} items must be strings, numbers, booleans or null, got ${describeFilterValue(ctx.resolve(item as Node))}`, ctx.positionOf(item as Node));
          return INVALID;
        }
        values.push(v);
      }
      return { op: op === '$in' ? 'in' : 'nin', values };
    }
    case '$exists': {
      if (!isScalar(valueNode) || typeof valueNode.value !== 'boolean') {
        ctx.add(opPath, 'bad_filter', `$exists expects true or false, got ${describeNode(valueNode)}`);
        return INVALID;
      }
      return { op: 'exists', value: valueNode.value };
    }
    default:
      ctx.add(opPath, 'bad_filter', `unknown filter operator ${JSON.stringify(op)} (expected one of: ${FILTER_OPERATORS.join(', ')})`, opPos);
      return INVALID;
  }
}

function toMongo(c: FilterCondition): unknown {
  switch (c.op) {
    case 'eq':
      return c.value;
    case 'ne':
      return { $ne: c.value };
    case 'in':
      return { $in: [...c.values] };
    case 'nin':
      return { $nin: [...c.values] };
    case 'exists':
      return { $exists: c.value };
  }
}

/** The document fields a filter reads (extract must project them so transform can re-check). */
export function fieldsOfFilter(filter: DocumentFilter): string[] {
  return Object.keys(filter.conditions);
}
