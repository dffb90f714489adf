// The figures a run's report.html shows, against its manifest. The report is what an auditor opens
// first, yet no checksum can cover it (it is written from the manifest, after it): `etl verify`
// renders the parts of the report that come from the manifest alone (the totals, the rows per table,
// the count identities) and compares them with the same parts of the report it was given.
// The rest (examples, history, the ledger's word) depends on the secrets and the database of
// whoever wrote the report: not compared.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Manifest } from '../staging/manifest.ts';
import { runPaths } from '../staging/run-folder.ts';
import { gatherRunReport } from '../report/run-report-data.ts';
import { renderRunReport } from '../report/run-report-html.ts';
import { REPORT_FILE } from './manifest-files.ts';

/** Beyond this a file is not a report etl wrote (a failure message is cut to a line, examples to 60 characters). */
export const MAX_REPORT_BYTES = 16 << 20;

/** The parts compared, by what a reader calls them, and the element that opens each. */
export const REPORT_PARTS: readonly { readonly name: string; readonly open: string; readonly close: string }[] = [
  { name: 'the totals', open: '<p id="totals">', close: '</p>' },
  { name: 'the rows per table', open: '<table id="table-figures">', close: '</table>' },
  { name: 'the count reconciliation', open: '<table id="identities">', close: '</table>' },
];

/** The part of `html` from its opening element to the first close after it, or null. */
function partOf(html: string, open: string, close: string): string | null {
  const start = html.indexOf(open);
  if (start === -1) return null;
  const end = html.indexOf(close, start);
  return end === -1 ? null : html.slice(start, end + close.length);
}

/**
 * The parts of `<dir>/report.html` that differ from what its manifest gives, by name; null when the
 * folder holds no report. A report too large to be etl's differs in every part.
 */
export async function reportDifferences(dir: string, manifest: Manifest): Promise<string[] | null> {
  const file = path.join(dir, REPORT_FILE);
  const info = await stat(file).catch(() => null);
  if (!info?.isFile()) return null;
  if (info.size > MAX_REPORT_BYTES) return REPORT_PARTS.map((p) => p.name);
  const given = await readFile(file, 'utf8');
  const expected = renderRunReport(await gatherRunReport(runPaths(path.dirname(dir), path.basename(dir)), manifest, [], []));
  return REPORT_PARTS.filter((p) => partOf(given, p.open, p.close) !== partOf(expected, p.open, p.close)).map((p) => p.name);
}
