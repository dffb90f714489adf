// The incremental load's baseline: the same merge written by hand as one psql script, run in one
// transaction on a copy of the database as it stood before etl's incremental load. Per staged
// table, in load order: its CSV (dedupe: its contributions) \copy'd into a temp table, the rows
// whose reference is missing dropped (reject) or NULLed (set_null), then
//   upsert             INSERT … ON CONFLICT DO UPDATE of the rows that differ;
//   delete_and_insert  the staged parents' links that are gone deleted, the others updated and inserted;
//   dedupe             the staged documents' contributions replaced, the touched keys recomputed and upserted;
// and the rows of the staged documents that the batch no longer holds deleted (keys file).
// Not done, unlike etl: checksums of the staged files, the rejects files, etl_pending, the ledger,
// watermarks, deletes followed to referencing tables, line numbers of refused rows.
import path from 'node:path';
import type { PipelineModel } from '../model/types.ts';
import type { Manifest } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { COPY_CSV_OPTIONS } from '../staging/csv.ts';
import { ident, identList } from '../schema/sql.ts';
import { readCsvHeader } from '../load/copy-in.ts';
import { list, matchKey, tableShape, type ShapeColumn, type TableShape } from '../load/shape.ts';

const quoteFile = (file: string): string => `'${file.replace(/'/g, "''")}'`;
const copyLine = (temp: string, columns: string, file: string): string => `\\copy ${temp} (${columns}) FROM ${quoteFile(file)} WITH ${COPY_CSV_OPTIONS}`;

/** The psql script merging the staged tables of `manifest` into their tables. */
export async function handMergeScript(model: PipelineModel, paths: RunPaths, manifest: Manifest): Promise<string> {
  const staged = manifest.stages.transform?.tables ?? {};
  const lines: string[] = [`SET work_mem = '128MB';`, 'SET CONSTRAINTS ALL DEFERRED;'];
  for (const [index, name] of model.loadOrder.entries()) {
    const record = staged[name];
    if (!record) continue;
    const shape = tableShape(model.tables.get(name)!, index);
    const file = (f: { file: string }) => path.resolve(paths.dir, f.file);
    const s = ident(`hand_stage_${index}`);
    const k = ident(`hand_keys_${index}`);
    const scope = record.complete ? null : record.keys ? k : null;
    if (scope) {
      const keyColumn = shape.kind === 'dedupe_upsert' ? shape.documentColumn : shape.docKey!;
      // The keys file: the key column, and (upsert, explode) the document `_id` beside it.
      const header = await readCsvHeader(file(record.keys!));
      const extra = header.slice(1).map((h) => `, ${ident(h)} TEXT`).join('');
      lines.push(`CREATE TEMP TABLE ${k} (${keyColumn.id} ${keyColumn.type}${extra}) ON COMMIT DROP;`, copyLine(k, identList(header), file(record.keys!)), `ANALYZE ${k};`);
    }
    lines.push(`CREATE TEMP TABLE ${s} ON COMMIT DROP AS SELECT ${list(shape.columns)} FROM ${shape.target} WITH NO DATA;`);
    if (shape.kind === 'dedupe_upsert') lines.push(...recomputeKeys(shape, s, scope, file(record.contrib!), index));
    else lines.push(copyLine(s, list(shape.columns), file(record.csv)), `ANALYZE ${s};`);
    lines.push(...referenceChecks(model, shape, s), ...merge(shape, s), ...leave(shape, s, scope, record.complete === true, index));
  }
  return `${lines.join('\n')}\n`;
}

/** dedupe: contributions of the staged documents replaced; the batch = the latest contribution of each touched key. */
function recomputeKeys(shape: TableShape, s: string, scope: string | null, contribFile: string, index: number): string[] {
  const c = ident(`hand_contrib_${index}`);
  const t = ident(`hand_touched_${index}`);
  const state = shape.contributions!;
  const doc = shape.documentColumn.id;
  const replaced = scope ? `${doc} IN (SELECT ${doc} FROM ${scope})` : 'true';
  return [
    `CREATE TEMP TABLE ${c} ON COMMIT DROP AS SELECT ${doc}, ${list(shape.columns)} FROM ${state} WITH NO DATA;`,
    copyLine(c, `${doc}, ${list(shape.columns)}`, contribFile),
    `CREATE TEMP TABLE ${t} ON COMMIT DROP AS SELECT DISTINCT ${list(shape.key)} FROM (SELECT ${list(shape.key)} FROM ${state} WHERE ${replaced} UNION ALL SELECT ${list(shape.key)} FROM ${c}) AS x;`,
    `DELETE FROM ${state} WHERE ${replaced};`,
    `INSERT INTO ${state} (${doc}, ${list(shape.columns)}) SELECT DISTINCT ON (${doc}) ${doc}, ${list(shape.columns)} FROM ${c} ORDER BY ${doc};`,
    `INSERT INTO ${s} SELECT DISTINCT ON (${list(shape.key, 'x.')}) ${list(shape.columns, 'x.')} FROM ${state} AS x ` +
      `WHERE (${list(shape.key, 'x.')}) IN (SELECT ${list(shape.key)} FROM ${t}) ORDER BY ${list(shape.key, 'x.')}, x.${shape.latestBy!.id} DESC NULLS LAST, x.${doc} COLLATE "C" DESC;`,
    `ANALYZE ${s};`,
  ];
}

/** Rows whose reference has no row: dropped (reject) or the reference NULLed (set_null). */
function referenceChecks(model: PipelineModel, shape: TableShape, s: string): string[] {
  const out: string[] = [];
  for (const column of shape.table.stagedColumns) {
    const fk = column.foreignKey;
    if (!fk || !model.tables.has(fk.table)) continue;
    const c = ident(column.name);
    let missing = `${c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${ident(fk.table)} AS p WHERE p.${ident(fk.column)} = b.${c})`;
    if (fk.table === shape.table.name) missing += ` AND NOT EXISTS (SELECT 1 FROM ${s} AS q WHERE q.${ident(fk.column)} = b.${c})`;
    out.push(fk.onMissing === 'set_null' && column.nullable ? `UPDATE ${s} AS b SET ${c} = NULL WHERE ${missing};` : `DELETE FROM ${s} AS b WHERE ${missing};`);
  }
  return out;
}

function merge(shape: TableShape, s: string): string[] {
  const cols = list(shape.columns);
  const differs = (a: string, b: string, cs: readonly ShapeColumn[]) => `(${list(cs, `${a}.`)}) IS DISTINCT FROM (${list(cs, `${b}.`)})`;
  if (shape.kind !== 'delete_and_insert') {
    const set = shape.others.map((c) => `${c.id} = EXCLUDED.${c.id}`).join(', ');
    const conflict = shape.others.length ? `DO UPDATE SET ${set} WHERE ${differs('t', 'EXCLUDED', shape.others)}` : 'DO NOTHING';
    return [`INSERT INTO ${shape.target} AS t (${cols}) SELECT ${cols} FROM ${s} ON CONFLICT (${list(shape.key)}) ${conflict};`];
  }
  const out: string[] = [];
  if (shape.others.length) {
    out.push(`UPDATE ${shape.target} AS t SET ${shape.others.map((c) => `${c.id} = b.${c.id}`).join(', ')} FROM ${s} AS b WHERE ${matchKey(shape.key, 't', 'b')} AND ${differs('t', 'b', shape.others)};`);
  }
  const absent = `NOT EXISTS (SELECT 1 FROM ${shape.target} AS t WHERE ${matchKey(shape.key, 't', 'b')})`;
  out.push(
    shape.keyIsUnique
      ? `INSERT INTO ${shape.target} (${cols}) SELECT ${list(shape.columns, 'b.')} FROM ${s} AS b ON CONFLICT (${list(shape.key)}) DO NOTHING;`
      : `INSERT INTO ${shape.target} (${cols}) SELECT ${list(shape.columns, 'b.')} FROM ${s} AS b WHERE ${absent};`,
  );
  return out;
}

/** Rows of the staged documents (dedupe: of the touched keys) that the batch no longer holds. */
function leave(shape: TableShape, s: string, scope: string | null, complete: boolean, index: number): string[] {
  const notStaged = `NOT EXISTS (SELECT 1 FROM ${s} AS b WHERE ${matchKey(shape.key, 'b', 't')})`;
  if (complete) return [`DELETE FROM ${shape.target} AS t WHERE ${notStaged};`];
  if (shape.kind === 'dedupe_upsert') {
    return [`DELETE FROM ${shape.target} AS t WHERE (${list(shape.key, 't.')}) IN (SELECT ${list(shape.key)} FROM ${ident(`hand_touched_${index}`)}) AND ${notStaged};`];
  }
  if (!scope || !shape.docKey) return [];
  return [`DELETE FROM ${shape.target} AS t WHERE t.${shape.docKey.id} IN (SELECT ${shape.docKey.id} FROM ${scope}) AND ${notStaged};`];
}
