// The reasons an extract rejects file gives, counted line by line and compared with the manifest's
// `rejected_reasons`. Extract cannot be re-run without its source, so the file's lines are the only
// witness of why each document was refused: a manifest whose reasons say otherwise (one moved to
// another, the same total) would mislead `etl runs`, `etl report` and the reader.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Manifest } from '../staging/manifest.ts';
import type { Mismatch } from './verify-report.ts';

/** Counts as `reason n, reason n` in reason order (`none` for no reason at all). */
function countsText(counts: Readonly<Record<string, number>>): string {
  const entries = Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length ? entries.map(([reason, n]) => `${reason} ${n}`).join(', ') : 'none';
}

/** The `reason` of each line, counted; a line that is not a reject counts under its own name. */
async function reasonsIn(file: string, signal?: AbortSignal): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const lines = createInterface({ input: createReadStream(file, { signal }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line === '') continue;
    let reason = '(a line that is not a reject)';
    try {
      const parsed: unknown = JSON.parse(line);
      const r = (parsed as { reason?: unknown } | null)?.reason;
      if (typeof r === 'string') reason = r;
    } catch {
      // counted as not a reject
    }
    counts[reason] = (counts[reason] ?? 0) + 1;
  }
  return counts;
}

/**
 * Each done extract collection's rejects file whose bytes are the ones recorded (`measuredSha`: a
 * file that differs is named already), its reasons against `rejected_reasons`.
 */
export async function checkRejectReasons(dir: string, manifest: Manifest, measuredSha: ReadonlyMap<string, string>, mismatches: Mismatch[], signal?: AbortSignal): Promise<void> {
  const extract = manifest.stages?.extract;
  if (extract?.status !== 'done') return;
  for (const [collection, c] of Object.entries(extract.collections ?? {})) {
    const record = c.rejects;
    if (!record || c.rejected_reasons === undefined || measuredSha.get(record.file) !== record.sha256) continue;
    const found = await reasonsIn(path.join(dir, record.file), signal);
    const expected = c.rejected_reasons;
    if (countsText(found) === countsText(expected)) continue;
    mismatches.push({
      check: 'count',
      file: record.file,
      table: collection,
      field: `stages.extract.collections.${collection}.rejected_reasons`,
      expected: countsText(expected),
      found: `${countsText(found)} (the reasons of the file's lines)`,
    });
  }
}
