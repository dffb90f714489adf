// The load baseline: `psql \copy` of a run's staged CSVs, in load order, into empty tables (same
// primary keys and unique constraints, hence the same indexes), in one transaction (-1) as load
// does. The same COPY options load uses (staging/csv.ts).
import { writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { PipelineModel } from '../model/types.ts';
import type { Manifest } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { documentIdColumn, contributionsTableName } from '../schema/state-tables.ts';
import { identList, ident } from '../schema/sql.ts';
import { COPY_CSV_OPTIONS } from '../staging/csv.ts';
import { runMeasured, type ChildFigures } from './child.ts';
import { libpqEnv } from './postgres.ts';

export const PSQL = process.env.BENCH_PSQL ?? '/usr/bin/psql';

export interface CopyFigures extends ChildFigures {
  readonly rows: number;
  readonly tables: number;
}

/** psql's \copy takes its file name as a literal: quote it, doubling quotes inside. */
function quoteFile(file: string): string {
  return `'${file.replace(/'/g, "''")}'`;
}

/** One COPY of the baseline: a staged file into a table, as load reads it. */
export interface StagedCopy {
  readonly target: string;
  readonly columns: readonly string[];
  readonly file: string;
}

/**
 * What load copies of a staged run, table by table: a table's CSV into it, or for a dedupe table its
 * contributions file into its contributions table (load never reads the rolled-up CSV).
 */
export function stagedCopies(model: PipelineModel, paths: RunPaths, manifest: Manifest, tables: readonly string[]): StagedCopy[] {
  return tables.map((name) => {
    const t = model.tables.get(name)!;
    const columns = t.stagedColumns.map((c) => c.name);
    const contrib = manifest.stages.transform?.tables[name]?.contrib;
    if (!contrib) return { target: name, columns, file: paths.transformCsv(name) };
    return { target: contributionsTableName(name), columns: [documentIdColumn(t), ...columns], file: path.resolve(paths.dir, contrib.file) };
  });
}

export async function psqlCopy(url: string, copies: readonly StagedCopy[], scratch: string): Promise<CopyFigures> {
  const lines = copies.map((c) => `\\copy ${ident(c.target)} (${identList(c.columns)}) FROM ${quoteFile(c.file)} WITH ${COPY_CSV_OPTIONS}`);
  const child = await psqlScript(url, `${lines.join('\n')}\n`, scratch);
  const rows = [...child.stdout.matchAll(/^COPY (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
  return { ...child, rows, tables: copies.length };
}

/** Runs a psql script in one transaction (--single-transaction), stopping at the first error. */
export async function psqlScript(url: string, text: string, scratch: string): Promise<ChildFigures> {
  const script = `${scratch}.sql`;
  await writeFile(script, text);
  try {
    const child = await runMeasured(PSQL, ['-X', '--single-transaction', '-v', 'ON_ERROR_STOP=1', '-f', script], scratch, { env: libpqEnv(url) });
    if (child.exitCode !== 0) throw new Error(`psql failed (exit ${child.exitCode}): ${child.outputTail.trim()}`);
    return child;
  } finally {
    await rm(script, { force: true });
  }
}
