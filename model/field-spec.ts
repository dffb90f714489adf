// A declared field spec and the walker that checks a YAML node tree against it (Benthos style).
// The check runs on the nodes, not on decoded values, because only nodes still know their line:
// every finding points at the offending key or value. The walker also decodes what is valid into
// plain values and records every node's position, so later cross-checks can point at lines too.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { parseInstant } from './instant.ts';

export type Path = readonly (string | number)[];

export interface Position {
  readonly line: number;
  readonly col: number;
}

/** A finding before the file name is attached. */
export interface Lint {
  readonly line: number;
  readonly col: number;
  readonly path: Path;
  readonly code: string;
  readonly message: string;
}

export type ValueSpec =
  | { readonly kind: 'string'; readonly oneOf?: readonly string[] }
  | { readonly kind: 'integer'; readonly min?: number; readonly max?: number }
  | { readonly kind: 'boolean' }
  /** An ISO date (`2024-01-31`, read as UTC midnight) or date-time. */
  | { readonly kind: 'date' }
  /** A string, number or boolean, kept as its text (constants). */
  | { readonly kind: 'scalar' }
  | { readonly kind: 'list'; readonly items: ValueSpec; readonly nonEmpty?: boolean }
  | { readonly kind: 'object'; readonly fields: Readonly<Record<string, FieldSpec>> }
  /** Free keys (table names, field → column mappings), each value of one spec. */
  | { readonly kind: 'map'; readonly values: ValueSpec }
  /** Checked by its own function, which receives the node (filters). */
  | { readonly kind: 'custom'; readonly expected: string; readonly decode: (node: Node, path: Path, ctx: LintContext) => unknown };

export interface FieldSpec {
  readonly value: ValueSpec;
  readonly required?: boolean;
  /** `key: null` (or `key:`) is accepted and decoded as null. */
  readonly nullable?: boolean;
}

/** Returned for a value that did not pass: callers skip it (its finding is already recorded). */
export const INVALID: unique symbol = Symbol('invalid');

export class LintContext {
  readonly lints: Lint[] = [];
  /** Position of each value node and of each map key, by path. */
  readonly #values = new Map<string, Position>();
  readonly #keys = new Map<string, Position>();

  constructor(
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
  ) {}

  positionOf(node: Node | null | undefined): Position | null {
    const start = node?.range?.[0];
    if (start === undefined) return null;
    const { line, col } = this.lineCounter.linePos(start);
    return { line, col };
  }

  recordValue(path: Path, pos: Position | null): void {
    if (pos) this.#values.set(JSON.stringify(path), pos);
  }

  recordKey(path: Path, pos: Position | null): void {
    if (pos) this.#keys.set(JSON.stringify(path), pos);
  }

  /** Whether the file wrote this key (its value valid or not): avoids findings that only echo another. */
  hasKey(path: Path): boolean {
    return this.#keys.has(JSON.stringify(path));
  }

  /** Where a path is: its value node, else its key, else the nearest parent known. */
  where(path: Path, prefer: 'value' | 'key' = 'value'): Position {
    for (let p = path; ; p = p.slice(0, -1)) {
      const k = JSON.stringify(p);
      const hit = prefer === 'key' ? (this.#keys.get(k) ?? this.#values.get(k)) : (this.#values.get(k) ?? this.#keys.get(k));
      if (hit) return hit;
      if (p.length === 0) return { line: 1, col: 1 };
    }
  }

  /** Line of a path (1 when unknown), for messages and the model's `line` fields. */
  lineOf(path: Path, prefer: 'value' | 'key' = 'value'): number {
    return this.where(path, prefer).line;
  }

  add(path: Path, code: string, message: string, at?: Position | null, prefer: 'value' | 'key' = 'value'): void {
    const pos = at ?? this.where(path, prefer);
    this.lints.push({ line: pos.line, col: pos.col, path, code, message });
  }

  resolve(node: Node | null | undefined): Node | null {
    if (node && isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? null;
    return node ?? null;
  }
}

/** `a map`, `a list`, `the string "x"`, `the number 3`, `nothing (null)`: what the user wrote. */
export function describeNode(node: Node | null): string {
  if (node === null) return 'nothing';
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || v === undefined) return 'nothing (null)';
    if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
    // As written: 1e400 reads as Infinity, 9007199254740993 as 9007199254740992.
    if (typeof v === 'number' || typeof v === 'bigint') return `the number ${node.source ?? String(v)}`;
    if (typeof v === 'boolean') return `the boolean ${String(v)}`;
  }
  return 'an unsupported value';
}

function expectedText(spec: ValueSpec): string {
  switch (spec.kind) {
    case 'string':
      return spec.oneOf ? `one of ${spec.oneOf.join(', ')}` : 'a string';
    case 'integer':
      return spec.min !== undefined && spec.min > 0 ? `a whole number ≥ ${spec.min}` : spec.min === 0 ? 'a whole number ≥ 0' : 'a whole number';
    case 'boolean':
      return 'true or false';
    case 'date':
      return 'a date such as 2024-01-31 or 2024-01-31T00:00:00Z';
    case 'scalar':
      return 'a string, number or boolean';
    case 'list':
      return `a list of ${expectedText(spec.items).replace(/^an? /, '')}s`.replace(/ss$/, 's');
    case 'object':
    case 'map':
      return 'a map';
    case 'custom':
      return spec.expected;
  }
}

/** Levenshtein distance, for "did you mean" on unknown keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestScore = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestScore) {
      bestScore = d;
      best = c;
    }
  }
  return best !== null && bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

type SpecOf<K extends ValueSpec['kind']> = Extract<ValueSpec, { kind: K }>;

/** Checks `node` against `spec` at `path`; returns the decoded value or INVALID. */
export function lintValue(rawNode: Node | null, spec: ValueSpec, path: Path, ctx: LintContext, keyPos: Position | null = null): unknown {
  const node = ctx.resolve(rawNode);
  ctx.recordValue(path, ctx.positionOf(node));
  const wrongKind = (): typeof INVALID => {
    // A block map or list starts on the line after its key: the key's line is the one to show.
    const at = (isMap(node) || isSeq(node)) && keyPos ? keyPos : null;
    ctx.add(path, 'wrong_kind', `expected ${expectedText(spec)}, got ${describeNode(node)}`, at);
    return INVALID;
  };
  switch (spec.kind) {
    case 'string':
      return isScalar(node) && typeof node.value === 'string' ? lintString(node.value, spec, path, ctx) : wrongKind();
    case 'integer':
      return isScalar(node) && typeof node.value === 'number' && Number.isInteger(node.value) ? lintInteger(node.value, spec, path, ctx) : wrongKind();
    case 'boolean':
      return isScalar(node) && typeof node.value === 'boolean' ? node.value : wrongKind();
    case 'date':
      return isScalar(node) ? lintDate(node, spec, path, ctx, wrongKind) : wrongKind();
    case 'scalar': {
      const v = isScalar(node) ? node.value : undefined;
      if (typeof v === 'number') return lintScalarNumber(node as Scalar, v, path, ctx);
      return typeof v === 'string' || typeof v === 'boolean' ? String(v) : wrongKind();
    }
    case 'list':
      return isSeq(node) ? lintList(node, spec, path, ctx) : wrongKind();
    case 'map':
      return isMap(node) ? lintMap(node, spec, path, ctx) : wrongKind();
    case 'object':
      return isMap(node) ? lintObject(node, spec, path, ctx) : wrongKind();
    case 'custom':
      return spec.decode(node as Node, path, ctx);
  }
}

function lintString(value: string, spec: SpecOf<'string'>, path: Path, ctx: LintContext): unknown {
  if (spec.oneOf && !spec.oneOf.includes(value)) {
    ctx.add(path, 'bad_value', `unknown value ${JSON.stringify(value)} (expected one of: ${spec.oneOf.join(', ')})`);
    return INVALID;
  }
  if (value.trim() === '') {
    ctx.add(path, 'bad_value', 'expected a non-empty string');
    return INVALID;
  }
  return value;
}

/**
 * A number where text is kept (a constant): its text must be the one written, or the rows would hold
 * another (YAML reads 007 as 7, 1e3 as 1000, 9007199254740993 as 9007199254740992).
 */
function lintScalarNumber(node: Scalar, value: number, path: Path, ctx: LintContext): unknown {
  const written = node.source ?? String(value);
  if (written === String(value)) return written;
  ctx.add(path, 'bad_value', `the number ${written}: YAML reads it as ${String(value)}, which is the text the rows would hold; quote it ('${written}') to keep it as written, or write ${String(value)}`);
  return INVALID;
}

function lintInteger(value: number, spec: SpecOf<'integer'>, path: Path, ctx: LintContext): unknown {
  if ((spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) {
    const range = spec.max === undefined ? `≥ ${spec.min}` : `between ${spec.min ?? '-∞'} and ${spec.max}`;
    ctx.add(path, 'bad_value', `expected a whole number ${range}, got ${value}`);
    return INVALID;
  }
  return value;
}

function lintDate(node: Scalar, spec: SpecOf<'date'>, path: Path, ctx: LintContext, wrongKind: () => typeof INVALID): unknown {
  const v = node.value;
  const text = v instanceof Date ? v.toISOString() : typeof v === 'string' ? v.trim() : null;
  if (text === null) return wrongKind();
  const date = v instanceof Date ? v : parseInstant(text);
  if (date === null) {
    ctx.add(path, 'bad_value', `expected ${expectedText(spec)}, got ${describeNode(node)}`);
    return INVALID;
  }
  return date;
}

function lintList(node: YAMLSeq, spec: SpecOf<'list'>, path: Path, ctx: LintContext): unknown {
  if (spec.nonEmpty && node.items.length === 0) {
    ctx.add(path, 'bad_value', `expected a non-empty list of ${expectedText(spec.items).replace(/^an? /, '')}`);
    return INVALID;
  }
  return node.items.map((item, i) => lintValue(item as Node, spec.items, [...path, i], ctx));
}

function lintMap(node: YAMLMap, spec: SpecOf<'map'>, path: Path, ctx: LintContext): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const pair of node.items) {
    const keyNode = ctx.resolve(pair.key as Node);
    const keyPos = ctx.positionOf(keyNode);
    if (!isScalar(keyNode) || (typeof keyNode.value !== 'string' && typeof keyNode.value !== 'number')) {
      ctx.add(path, 'wrong_kind', `expected a name as key, got ${describeNode(keyNode)}`, keyPos);
      continue;
    }
    const key = String(keyNode.value);
    ctx.recordKey([...path, key], keyPos);
    out.set(key, lintValue(pair.value as Node, spec.values, [...path, key], ctx, keyPos));
  }
  return out;
}

function lintObject(node: YAMLMap, spec: SpecOf<'object'>, path: Path, ctx: LintContext): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of node.items) {
    const keyNode = ctx.resolve(pair.key as Node);
    const keyPos = ctx.positionOf(keyNode);
    const key = isScalar(keyNode) ? String(keyNode.value) : null;
    if (key === null) {
      ctx.add(path, 'wrong_kind', `expected a key, got ${describeNode(keyNode)}`, keyPos);
      continue;
    }
    const keyPath = [...path, key];
    ctx.recordKey(keyPath, keyPos);
    const field = spec.fields[key];
    if (!field) {
      const known = Object.keys(spec.fields);
      const guess = closest(key, known);
      ctx.add(keyPath, 'unknown_key', `unknown key ${JSON.stringify(key)} (${guess ? `did you mean "${guess}"? ` : ''}expected one of: ${known.join(', ')})`, keyPos);
      continue;
    }
    const value = lintField(ctx.resolve(pair.value as Node), field, keyPath, ctx, keyPos);
    if (value !== INVALID) out[key] = value;
  }
  const where = ctx.positionOf(node);
  for (const [key, field] of Object.entries(spec.fields)) {
    if (field.required && !node.has(key)) {
      ctx.add([...path, key], 'missing_key', `missing required key ${JSON.stringify(key)} (${expectedText(field.value)})`, where);
    }
  }
  return out;
}

/** The value of one known key of an object: null where the field allows it, nothing is a finding. */
function lintField(valueNode: Node | null, field: FieldSpec, keyPath: Path, ctx: LintContext, keyPos: Position | null): unknown {
  if (field.nullable && (valueNode === null || (isScalar(valueNode) && valueNode.value === null))) {
    ctx.recordValue(keyPath, ctx.positionOf(valueNode) ?? keyPos);
    return null;
  }
  if (valueNode === null || (isScalar(valueNode) && valueNode.value === null && valueNode.range?.[0] === valueNode.range?.[1])) {
    // `key:` with nothing after it: point at the key, the value has no position of its own.
    ctx.recordValue(keyPath, keyPos);
    ctx.add(keyPath, 'wrong_kind', `expected ${expectedText(field.value)}, got nothing`, keyPos);
    return INVALID;
  }
  return lintValue(valueNode, field.value, keyPath, ctx, keyPos);
}
