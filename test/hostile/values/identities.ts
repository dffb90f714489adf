// Checks of values-randomized.test.ts on a full run of MongoDB as it is (its staged files and the
// PostgreSQL database it filled, which the incremental database must equal): every reject line
// names what it refuses, and no two documents silently become one row.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Double, Int32, Long, ObjectId, type Db, type Document } from 'mongodb';
import pg from 'pg';
import type { DocumentFilter, PipelineModel, TableModel } from '../../../model/types.ts';
import { firstCells, query } from '../../mirror/harness.ts';
import { EXACT, idText } from './editor.ts';

/** A transform reject line (README "Rejects files"). */
interface TransformReject {
  readonly collection?: unknown;
  readonly _id?: unknown;
  readonly table?: unknown;
  readonly column?: unknown;
  readonly reason?: unknown;
}

/** A load reject line (load/rejects-file.ts). */
interface LoadReject {
  readonly table?: unknown;
  readonly key?: Record<string, unknown> | null;
  readonly column?: unknown;
  readonly reason?: unknown;
  readonly action?: unknown;
  readonly documents?: readonly string[];
}

async function lines<T>(file: string): Promise<T[]> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return '';
    throw e;
  });
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T);
}

const named = (v: unknown): boolean => typeof v === 'string' && v !== '';

/** Reject lines of a run that fail to name collection, _id, table, column and reason (transform), or table, key, column, reason, action (load). */
export async function unnamedRejects(model: PipelineModel, runDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const table of model.loadOrder) {
    for (const r of await lines<TransformReject>(path.join(runDir, 'transform', `${table}.rejects.ndjson`))) {
      if (!(named(r.collection) && typeof r._id === 'string' && r.table === table && named(r.column) && named(r.reason))) out.push(`transform/${table}: ${JSON.stringify(r)}`);
    }
    for (const r of await lines<LoadReject>(path.join(runDir, 'load', `${table}.rejects.ndjson`))) {
      const documents = r.reason !== 'duplicate_key' || (Array.isArray(r.documents) && r.documents.length >= 2);
      if (!(r.table === table && r.key && named(r.column) && named(r.reason) && named(r.action) && documents)) out.push(`load/${table}: ${JSON.stringify(r)}`);
    }
  }
  return out;
}

/**
 * The text a VARCHAR key column holds for an `_id`, by the type contract (README "Text"); null when
 * the column cannot hold it (the document is unkeyed, and its row rejected).
 */
export function keyOf(id: unknown): string | null {
  if (id instanceof ObjectId) return id.toHexString();
  if (typeof id === 'string') return id.includes('\u0000') || /[\ud800-\udfff]/.test(id.replace(/[\ud800-\udbff][\udc00-\udfff]/g, '')) ? null : id;
  if (id instanceof Int32) return String(id.value);
  if (id instanceof Long) return id.toString();
  if (id instanceof Double || typeof id === 'number') {
    const v = id instanceof Double ? id.value : id;
    return Number.isFinite(v) ? String(Object.is(v, -0) ? 0 : v) : null;
  }
  if (typeof id === 'boolean') return String(id);
  if (id instanceof Date) {
    const y = id.getUTCFullYear();
    return Number.isNaN(id.getTime()) || y < 1 || y > 9999 ? null : id.toISOString();
  }
  return null;
}

function matches(filter: DocumentFilter | null, doc: Document): boolean {
  if (!filter) return true;
  return Object.entries(filter.conditions).every(([field, c]) => {
    const v = field.split('.').reduce<unknown>((x, k) => (x && typeof x === 'object' ? (x as Document)[k] : undefined), doc);
    switch (c.op) {
      case 'eq':
        return v === c.value;
      case 'ne':
        return v !== c.value;
      case 'in':
        return c.values.includes(v as never);
      case 'nin':
        return !c.values.includes(v as never);
      case 'exists':
        return (v !== undefined) === c.value;
    }
  });
}

/**
 * The documents a full run offers a table (`_id` and the filter's fields, types exact): its
 * collection's, or those its filter keeps when the server applies it (every table of the collection
 * has one); `kept`: its filter keeps them (the others are skipped as `filtered`).
 */
async function documentsOf(model: PipelineModel, db: Db, table: TableModel): Promise<{ id: unknown; kept: boolean }[]> {
  const projection = Object.fromEntries([['_id', 1], ...Object.keys(table.filter?.conditions ?? {}).map((f) => [f, 1])]);
  const docs = await db.collection(table.collection).find({}, { projection, ...EXACT }).toArray();
  const serverFiltered = model.collections.find((c) => c.name === table.collection)?.serverFilter !== null;
  return docs.map((d) => ({ id: d._id as unknown, kept: matches(table.filter, d) })).filter((d) => d.kept || !serverFiltered);
}

const bsonType = (id: unknown): string =>
  id instanceof ObjectId ? 'ObjectId' : id instanceof Int32 ? 'Int32' : id instanceof Long ? 'Long' : id instanceof Double ? 'Double' : id instanceof Date ? 'Date' : typeof id;

const multiset = (xs: readonly string[]): Map<string, number> => {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
};

/**
 * No two documents silently become one, per table whose rows a document owns (upsert tables keyed
 * by `_id`, link tables by their parent): the keys file of the full run names each document under
 * the key the contract gives its `_id` (the documents it cannot key counted `unkeyed` and rejected);
 * a key two documents share holds no row, and each of them is named by a reject (transform, or load
 * `duplicate_key` listing it); a key one document has holds its row or a reject of it; no row has a
 * key no document gives. Dedupe tables: every contribution is one document's. Returns the failures,
 * and the keys two documents or more shared, by their `_id`s' BSON types (`Int32+string`): the proof
 * is not vacuous.
 */
export async function mergedDocuments(model: PipelineModel, db: Db, runDir: string, url: string, unkeyed: (table: string) => number): Promise<{ failures: string[]; shared: Map<string, number> }> {
  const out: string[] = [];
  const shared = new Map<string, number>();
  for (const name of model.loadOrder) {
    const table = model.tables.get(name)!;
    const dir = (kind: string) => path.join(runDir, kind, `${name}.rejects.ndjson`);
    if (table.strategy === 'dedupe') {
      const ids = await firstCells(path.join(runDir, 'transform', `${name}.contrib.csv`));
      const twice = [...multiset(ids)].filter(([, n]) => n > 1);
      if (twice.length > 0) out.push(`${name}: contributions named twice: ${twice.slice(0, 5).map(([id]) => id).join(', ')}`);
      continue;
    }
    if (table.documentKey === null) continue;
    const offered = await documentsOf(model, db, table);
    const keyed = offered.map((d) => ({ id: d.id, key: keyOf(d.id), kept: d.kept }));
    // The keys file names the documents the contract can key, under the contract's key.
    const staged = multiset(await firstCells(path.join(runDir, 'transform', `${name}.keys.csv`)));
    const expected = multiset(keyed.flatMap((k) => (k.key === null ? [] : [k.key])));
    const differ = [...new Set([...staged.keys(), ...expected.keys()])].filter((k) => staged.get(k) !== expected.get(k));
    if (differ.length > 0) out.push(`${name}: keys.csv ≠ the contract's keys of the documents: ${differ.slice(0, 5).map((k) => `${JSON.stringify(k)} staged ${staged.get(k) ?? 0}, documents ${expected.get(k) ?? 0}`).join('; ')}`);
    const notKeyed = keyed.filter((k) => k.key === null).length;
    if (unkeyed(name) !== notKeyed) out.push(`${name}: manifest unkeyed ${unkeyed(name)}, documents whose _id no key holds ${notKeyed}`);

    const transformRejected = new Set((await lines<TransformReject>(dir('transform'))).map((r) => r._id as string));
    const loadRejects = await lines<LoadReject>(dir('load'));
    const keyColumn = table.documentKey;
    const duplicates = new Set(loadRejects.filter((r) => r.reason === 'duplicate_key').flatMap((r) => r.documents ?? []));
    const loadRejected = new Set(loadRejects.map((r) => String(r.key?.[keyColumn])));
    const rows = new Map<string, number>();
    for (const r of await query<{ k: string; n: number }>(url, `SELECT ${pg.escapeIdentifier(keyColumn)}::text AS k, count(*)::int AS n FROM ${pg.escapeIdentifier(name)} GROUP BY 1`)) rows.set(r.k, r.n);

    const byKey = new Map<string, unknown[]>();
    for (const k of keyed.filter((x) => x.kept)) {
      if (k.key === null) {
        if (!transformRejected.has(idText(k.id))) out.push(`${name}: _id ${idText(k.id)} no key holds, and no transform reject names it`);
        continue;
      }
      byKey.set(k.key, [...(byKey.get(k.key) ?? []), k.id]);
    }
    for (const [key, ids] of byKey) {
      if (ids.length > 1) {
        const types = ids.map(bsonType).sort().join('+');
        shared.set(types, (shared.get(types) ?? 0) + 1);
        if (rows.has(key)) out.push(`${name}: ${ids.map(idText).join(' and ')} share the key ${JSON.stringify(key)}, which holds ${rows.get(key)} row(s)`);
        const silent = ids.filter((id) => !transformRejected.has(idText(id)) && !duplicates.has(idText(id)));
        if (table.strategy === 'upsert' && silent.length > 0) out.push(`${name}: ${ids.map(idText).join(' and ')} share the key ${JSON.stringify(key)}; no reject names ${silent.map(idText).join(', ')}`);
      } else if (table.strategy === 'upsert' && !rows.has(key) && !transformRejected.has(idText(ids[0])) && !loadRejected.has(key)) {
        out.push(`${name}: ${idText(ids[0])} has neither a row (key ${JSON.stringify(key)}) nor a reject`);
      }
    }
    for (const key of rows.keys()) if (!byKey.has(key)) out.push(`${name}: a row of key ${JSON.stringify(key)} that no document gives`);
  }
  return { failures: out, shared };
}
