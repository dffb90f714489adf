// `etl report` and `etl pack`: writes the HTML report of a run into its folder (report.html, an
// auditor's first page), or to a chosen file, whole or not at all.
import path from 'node:path';
import { REPORT_FILE } from '../audit/manifest-files.ts';
import { writeFileAtomic } from '../staging/atomic-file.ts';
import { readManifest } from '../staging/manifest.ts';
import { resolveRun } from '../staging/run-folder.ts';
import type { Ledger } from './ledger.ts';
import { gatherRunReport } from './run-report-data.ts';
import { renderRunReport } from './run-report-html.ts';
import { runHistory } from './run-history.ts';

export { REPORT_FILE };

export interface WriteReportOptions {
  readonly stagingDir: string;
  /** Default: the run `latest` points at. */
  readonly runId?: string | null;
  /** Default: <run folder>/report.html. */
  readonly out?: string | null;
  /** The ledger, for loaded runs whose files were cleaned (null: the staged runs only). */
  readonly ledger?: Ledger | null;
  /** Configured secret values: never written, even if a rejected value holds one. */
  readonly secrets?: readonly string[];
}

export interface ReportResult {
  readonly run_id: string;
  readonly file: string;
  readonly bytes: number;
}

export async function writeRunReport(o: WriteReportOptions): Promise<ReportResult> {
  const paths = await resolveRun(o.stagingDir, o.runId);
  const manifest = await readManifest(paths);
  const history = await runHistory({ stagingDir: o.stagingDir, ledger: o.ledger ?? null });
  // Oldest first, up to this run: the charts read left to right.
  const upTo = history.runs.filter((r) => r.run_id <= paths.runId).reverse();
  const data = await gatherRunReport(paths, manifest, upTo, o.secrets ?? []);
  const html = renderRunReport(data);
  const file = path.resolve(o.out ?? path.join(paths.dir, REPORT_FILE));
  await writeFileAtomic(file, html);
  return { run_id: paths.runId, file, bytes: Buffer.byteLength(html) };
}
