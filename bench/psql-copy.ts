// The load baseline: `psql \copy` of a run's staged CSVs, in load order, into empty tables (same
// primary keys and unique constraints, hence the same indexes), in one transaction (-1) as load
// does. The same COPY options load uses (staging/csv.ts).
import { writeFile, rm } from 'node:fs/promises';
import type { PipelineModel } from '../model/types.ts';
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

export async function psqlCopy(url: string, model: PipelineModel, csvOf: (table: string) => string, tables: readonly string[], scratch: string): Promise<CopyFigures> {
  const script = `${scratch}.copy.sql`;
  const lines = tables.map((t) => {
    const columns = model.tables.get(t)!.stagedColumns.map((c) => c.name);
    return `\\copy ${ident(t)} (${identList(columns)}) FROM ${quoteFile(csvOf(t))} WITH ${COPY_CSV_OPTIONS}`;
  });
  await writeFile(script, `${lines.join('\n')}\n`);
  try {
    const child = await runMeasured(PSQL, ['-X', '--single-transaction', '-v', 'ON_ERROR_STOP=1', '-f', script], scratch, { env: libpqEnv(url) });
    if (child.exitCode !== 0) throw new Error(`psql \\copy failed (exit ${child.exitCode}): ${child.outputTail.trim()}`);
    const rows = [...child.stdout.matchAll(/^COPY (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    return { ...child, rows, tables: tables.length };
  } finally {
    await rm(script, { force: true });
  }
}
