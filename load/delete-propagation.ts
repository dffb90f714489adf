// Delete propagation, load side: removes the rows whose MongoDB document is gone, and settles the
// rows that reference them the way a full load of the final MongoDB state would have. Runs inside
// the load's transaction, AFTER every table of the run has been merged, and before the commit.
//
// Input: per propagating table, transform/<table>.live.csv (the keys of the rows the table may hold:
// see transform/live-keys.ts), recorded in the manifest as transform.tables[t].live. A table without
// that record is never touched by the "document gone" rule: nothing is deleted on a guess.
//
// The rules, per table T of the model:
//   gone        T propagates and the row's key (id, or an explode table's parent column) is not in
//               T's live set → deleted.
//   referencing the row has a column whose foreign key says `on_missing: reject` (the default; a NOT
//               NULL column counts as reject, as in load/references.ts) and it points at a row
//               deleted here → deleted too (a full load would have refused it: "missing reference").
//               This follows the foreign keys transitively (users → coachings → periods → days →
//               days_contents_links), for every table of the model, propagating or not.
//   set_null    a column with `on_missing: set_null` pointing at a deleted row, in a row that stays
//               → set to NULL (a full load would have nulled it).
// Reported per table: gone, referencing, nulled (per column), and the size of the live set.
//
// Why after the merges: extract reads the ids after the documents. A document deleted between the
// two passes is staged (so the merge writes it) but not live, and the deletion that follows removes
// it again; merging after deleting would have resurrected it until the next run. A document created
// between the two passes is live but not staged: nothing to delete, and the next run's watermark
// reads it. Rows this run staged that reference a deleted row pass the merge's reference check (the
// row is still there) and are then removed here as "referencing": the end state is the same.
//
// Why in reverse foreign-key order: the foreign keys are checked at the end of each statement, so
// a referenced row can only go once the rows referencing it are gone or nulled. The doomed rows are
// therefore first FOUND in load order (parents first: a child's fate depends on its parents'), kept
// in temp tables, then the set_null updates run, then the DELETEs in reverse load order.
//
// Guard: a live set with no key at all, for a table holding rows, is refused (the load fails and
// rolls back) unless `allowDeleteAll`: an empty set more likely means a wrong database or a
// collection that does not exist (extract warns) than a collection really emptied.
import path from 'node:path';
import type pg from 'pg';
import { LoadError, StagingError } from '../model/errors.ts';
import type { PipelineModel, TableModel } from '../model/types.ts';
import { COPY_CSV_OPTIONS } from '../staging/csv.ts';
import type { Manifest } from '../staging/manifest.ts';
import type { LiveKeysFigures } from '../staging/manifest-transform.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { ident, type SqlIdent } from '../schema/sql.ts';
import { copyFileInto, readCsvHeader } from './copy-in.ts';
import { columnTypeSql } from './merge-sql.ts';

type LiveRecord = LiveKeysFigures;

export interface DeletePropagationInput {
  readonly client: pg.Client;
  readonly model: PipelineModel;
  readonly paths: RunPaths;
  readonly manifest: Manifest;
  /** Tables this load merged: only those among them with a staged live set propagate. */
  readonly tables: readonly string[];
  /** Go on when a live set is empty and the table holds rows (every row of it then goes). */
  readonly allowDeleteAll?: boolean;
  readonly signal?: AbortSignal;
  /** Told which step runs, so a failure can name it. */
  readonly onStep?: (table: string, step: string, file?: string) => void;
}

export interface TableDeletions {
  readonly table: string;
  /** Keys in the table's live set; null when the table does not propagate (only followed references). */
  readonly live: number | null;
  /** Rows deleted because their document is gone. */
  readonly gone: number;
  /** Rows deleted because they referenced a deleted row (on_missing: reject). */
  readonly referencing: number;
  /** References set to NULL because they pointed at a deleted row (on_missing: set_null), per column. */
  readonly nulled: number;
  readonly nulledColumns: Readonly<Record<string, number>>;
}

export interface DeletePropagationReport {
  /** Tables whose live set was staged and applied, in load order. */
  readonly propagated: readonly string[];
  /** Every table with a live set or a change, in load order. */
  readonly tables: readonly TableDeletions[];
  /** Rows deleted over all tables (gone + referencing). */
  readonly deleted: number;
}

interface Edge {
  /** The referencing table and column. */
  readonly from: TableModel;
  readonly column: string;
  readonly to: string;
  readonly toColumn: string;
  readonly action: 'reject' | 'set_null';
}

interface Doomed {
  readonly table: TableModel;
  /** Temp table holding the doomed rows' referenced columns (+ etl_gone), or null when nothing references the table. */
  readonly temp: SqlIdent | null;
  /** The column identifying a doomed row in `temp` (a referenced column, so unique). */
  readonly idColumn: string | null;
  /** WHERE fragment (on alias t) matching the doomed rows, for tables without a temp table. */
  readonly predicate: string;
  readonly goneExpr: string;
  rows: number;
}

const q = (client: pg.Client, sql: string): Promise<pg.QueryResult> => client.query(sql);

/** Applies the staged live sets of `input.tables`. Returns zeros (and does nothing) when none is staged. */
export async function propagateDeletes(input: DeletePropagationInput): Promise<DeletePropagationReport> {
  const { client, model, paths, signal } = input;
  const staged = input.manifest.stages.transform?.tables ?? {};
  const wanted = new Set(input.tables);
  const live = new Map<string, LiveRecord>();
  for (const name of model.loadOrder) {
    const record = staged[name]?.live;
    if (wanted.has(name) && record) live.set(name, record);
  }
  if (live.size === 0) return { propagated: [], tables: [], deleted: 0 };

  const index = new Map(model.loadOrder.map((t, i) => [t, i]));
  const tableOf = (name: string): TableModel => model.tables.get(name)!;
  const liveTemp = (t: string) => ident(`etl_live_${index.get(t)}`);
  const doomedTemp = (t: string) => ident(`etl_doomed_${index.get(t)}`);
  const temps: SqlIdent[] = [];

  // ── live sets ───────────────────────────────────────────────────────────────────────────────
  const liveCounts = new Map<string, number>();
  for (const [name, record] of live) {
    signal?.throwIfAborted();
    const table = tableOf(name);
    const column = table.columns.find((c) => c.name === record.column);
    if (!column) {
      throw new StagingError('live_keys_mismatch', `${record.file}: key column ${record.column} is not a column of ${name} in pipeline.yaml`, {
        hint: 'load the run with the pipeline.yaml it was transformed with, or transform it again',
      });
    }
    const file = liveFile(paths, record);
    input.onStep?.(name, 'staging the live keys', record.file);
    let header: string[];
    try {
      header = await readCsvHeader(file);
    } catch (cause) {
      throw new StagingError('staged_file_missing', `cannot read ${record.file} of run ${paths.runId}: deletes of ${name} cannot propagate`, {
        context: { file },
        hint: 'the run is damaged: run `etl transform` again',
        cause,
      });
    }
    if (header.length !== 1 || header[0] !== record.column) {
      throw new StagingError('columns_mismatch', `${record.file} has columns (${header.join(', ')}), expected (${record.column})`, { context: { file } });
    }
    const temp = liveTemp(name);
    await q(client, `CREATE TEMP TABLE ${temp} (k ${columnTypeSql(column.sqlType)}) ON COMMIT DROP`);
    temps.push(temp);
    const copied = await copyFileInto(client, file, `COPY ${temp} (k) FROM STDIN WITH ${COPY_CSV_OPTIONS}`, signal);
    if (copied.sha256 !== record.sha256 || copied.rowCount !== record.records) {
      throw new StagingError(
        'staged_file_changed',
        `${record.file} of run ${paths.runId} is not the file transform wrote (read ${copied.rowCount} keys, sha256 ${copied.sha256}; manifest ${record.records}, ${record.sha256})`,
        { context: { file }, hint: 'a staged file must not be edited; run `etl transform` again' },
      );
    }
    await q(client, `ANALYZE ${temp}`);
    liveCounts.set(name, copied.rowCount);
    if (copied.rowCount === 0 && !input.allowDeleteAll) {
      const held = await q(client, `SELECT count(*)::bigint AS n FROM ${ident(name)}`);
      const n = Number((held.rows[0] as { n: string }).n);
      if (n > 0) {
        throw new LoadError(
          'delete_all_refused',
          `${name}: the run's live set is empty (collection ${table.collection} had no matching document when extracted), so propagating deletes would delete all ${n} rows of ${name}; refused`,
          {
            context: { table: name, file: record.file },
            hint: 'check the source database and collection names (extract warns about a missing collection); if the collection really is empty, load again with --allow-delete-all. Nothing was changed',
          },
        );
      }
    }
  }

  // ── the foreign-key graph of the model ──────────────────────────────────────────────────────
  const edges: Edge[] = [];
  for (const name of model.loadOrder) {
    const t = tableOf(name);
    for (const c of t.columns) {
      const fk = c.foreignKey;
      if (!fk || !model.tables.has(fk.table)) continue;
      edges.push({ from: t, column: c.name, to: fk.table, toColumn: fk.column, action: fk.onMissing === 'set_null' && c.nullable ? 'set_null' : 'reject' });
    }
  }
  const referencedColumns = (name: string): string[] => [...new Set(edges.filter((e) => e.to === name).map((e) => e.toColumn))];

  // ── find the doomed rows, parents first ─────────────────────────────────────────────────────
  const doomed = new Map<string, Doomed>();
  for (const name of model.loadOrder) {
    signal?.throwIfAborted();
    const t = tableOf(name);
    const target = ident(name);
    const record = live.get(name);
    const goneExpr = record ? `(t.${ident(record.column)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${liveTemp(name)} l WHERE l.k = t.${ident(record.column)}))` : 'false';
    const refParts = edges
      .filter((e) => e.from.name === name && e.action === 'reject' && e.to !== name && (doomed.get(e.to)?.rows ?? 0) > 0)
      .map((e) => `EXISTS (SELECT 1 FROM ${doomed.get(e.to)!.temp!} d WHERE d.${ident(e.toColumn)} = t.${ident(e.column)})`);
    if (!record && refParts.length === 0) continue;
    const predicate = [goneExpr, ...refParts].filter((p) => p !== 'false').join(' OR ');
    const refCols = referencedColumns(name);
    input.onStep?.(name, 'finding the rows whose document is gone');
    if (refCols.length === 0) {
      // Nothing references the table: its rows are deleted straight by the predicate.
      const found = await q(client, `SELECT count(*)::bigint AS n FROM ${target} t WHERE ${predicate}`);
      doomed.set(name, { table: t, temp: null, idColumn: null, predicate, goneExpr, rows: Number((found.rows[0] as { n: string }).n) });
      continue;
    }
    const temp = doomedTemp(name);
    const cols = refCols.map((c) => `t.${ident(c)}`).join(', ');
    const created = await q(client, `CREATE TEMP TABLE ${temp} ON COMMIT DROP AS SELECT ${cols}, ${goneExpr} AS etl_gone FROM ${target} t WHERE ${predicate}`);
    temps.push(temp);
    let rows = created.rowCount ?? 0;
    // A table referencing itself (none in the Wappizy model, handled anyway): rows referencing a
    // doomed row of the same table are doomed too, until no new one appears.
    const idColumn = refCols[0]!;
    for (const e of edges.filter((x) => x.from.name === name && x.to === name && x.action === 'reject')) {
      for (;;) {
        const added = await q(
          client,
          `INSERT INTO ${temp} SELECT ${cols}, false FROM ${target} t WHERE EXISTS (SELECT 1 FROM ${temp} d WHERE d.${ident(e.toColumn)} = t.${ident(e.column)}) ` +
            `AND NOT EXISTS (SELECT 1 FROM ${temp} d WHERE d.${ident(idColumn)} = t.${ident(idColumn)})`,
        );
        rows += added.rowCount ?? 0;
        if ((added.rowCount ?? 0) === 0) break;
      }
    }
    if (rows > 0) await q(client, `ANALYZE ${temp}`);
    doomed.set(name, { table: t, temp, idColumn, predicate, goneExpr, rows });
  }

  /** WHERE fragment (alias t) true for a row of `name` that is being deleted. */
  const isDoomed = (name: string): string => {
    const d = doomed.get(name);
    if (!d || d.rows === 0) return 'false';
    if (d.temp) return `EXISTS (SELECT 1 FROM ${d.temp} g WHERE g.${ident(d.idColumn!)} = t.${ident(d.idColumn!)})`;
    return `(${d.predicate})`;
  };

  // ── set_null references to doomed rows, in rows that stay ───────────────────────────────────
  const nulled = new Map<string, Record<string, number>>();
  for (const e of edges) {
    const target = doomed.get(e.to);
    if (e.action !== 'set_null' || !target || target.rows === 0) continue;
    signal?.throwIfAborted();
    input.onStep?.(e.from.name, `setting ${e.column} to NULL where it references a deleted ${e.to} row`);
    const r = await q(
      client,
      `UPDATE ${ident(e.from.name)} t SET ${ident(e.column)} = NULL ` +
        `WHERE EXISTS (SELECT 1 FROM ${target.temp!} d WHERE d.${ident(e.toColumn)} = t.${ident(e.column)}) AND NOT ${isDoomed(e.from.name)}`,
    );
    const n = r.rowCount ?? 0;
    if (n > 0) {
      const per = nulled.get(e.from.name) ?? {};
      per[e.column] = (per[e.column] ?? 0) + n;
      nulled.set(e.from.name, per);
    }
  }

  // ── delete, children first ──────────────────────────────────────────────────────────────────
  const counts = new Map<string, { gone: number; referencing: number }>();
  for (const name of [...model.loadOrder].reverse()) {
    const d = doomed.get(name);
    if (!d || d.rows === 0) continue;
    signal?.throwIfAborted();
    input.onStep?.(name, 'deleting the rows whose document is gone');
    const target = ident(name);
    // One statement a table: its foreign keys are checked once, at its end.
    const sql = d.temp
      ? `WITH d AS (DELETE FROM ${target} t USING ${d.temp} g WHERE g.${ident(d.idColumn!)} = t.${ident(d.idColumn!)} RETURNING g.etl_gone AS gone) `
      : `WITH d AS (DELETE FROM ${target} t WHERE ${d.predicate} RETURNING ${d.goneExpr} AS gone) `;
    const r = await q(client, `${sql}SELECT count(*) FILTER (WHERE gone)::bigint AS gone, count(*) FILTER (WHERE NOT gone)::bigint AS referencing FROM d`);
    const row = r.rows[0] as { gone: string; referencing: string };
    counts.set(name, { gone: Number(row.gone), referencing: Number(row.referencing) });
  }

  for (const temp of temps) await q(client, `DROP TABLE IF EXISTS ${temp}`);

  const tables: TableDeletions[] = [];
  let deleted = 0;
  for (const name of model.loadOrder) {
    const c = counts.get(name) ?? { gone: 0, referencing: 0 };
    const per = nulled.get(name) ?? {};
    const n = Object.values(per).reduce((a, b) => a + b, 0);
    if (!live.has(name) && c.gone + c.referencing + n === 0) continue;
    deleted += c.gone + c.referencing;
    tables.push({ table: name, live: liveCounts.get(name) ?? null, gone: c.gone, referencing: c.referencing, nulled: n, nulledColumns: per });
  }
  return { propagated: [...live.keys()], tables, deleted };
}

/** The live keys file the manifest names, which must lie in the run's transform folder. */
function liveFile(paths: RunPaths, record: LiveRecord): string {
  const file = path.resolve(paths.dir, record.file);
  if (path.dirname(file) !== path.resolve(paths.transformDir)) {
    throw new StagingError('bad_manifest', `the manifest names ${record.file} as live keys file, outside ${paths.relative(paths.transformDir)}/`, {
      context: { file: paths.manifest },
    });
  }
  return file;
}
