// Everything the HTML report of one run shows, gathered from its folder (manifest, rejects files)
// and the run history. Values from the data pass through redaction and are cut short: the report
// travels to auditors and must never carry a secret.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { redactText } from '../errors/redact.ts';
import { printableLine } from '../errors/printable.ts';
import type { Manifest, StageName } from '../staging/manifest.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { reconcile } from '../audit/reconcile.ts';
import type { Identity } from '../audit/verify-report.ts';
import type { LoadTableRecord } from '../staging/manifest-load.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { failedStages, killedHint, killedStage, killedUnrecorded, shownStagesOfRun, type ShownStageStatus, type StageFailure } from '../staging/stage-writer.ts';
import type { RunHistoryEntry } from './run-history.ts';

const EXAMPLES_PER_REASON = 3;

/** A stage's status in the report when it never ran: no section, no files. */
export const STAGE_NOT_RUN = 'not run';
const VALUE_CHARS = 60;
/** An extract reject's detail: a sentence naming a field or a byte. */
const DETAIL_CHARS = 160;
/** Column names whose values are never shown, whatever they hold. */
const SECRET_COLUMN = /pass|secret|token|api.?key|private|credential/i;

export interface RejectExample {
  readonly id: string;
  readonly column: string;
  readonly value: string;
  /** What extract found wrong with a document it could not stage (its rejects' `detail`: a field given twice, no _id…); null for a row. */
  readonly detail: string | null;
}

export interface RejectReason {
  readonly stage: 'extract' | 'transform' | 'load';
  readonly reason: string;
  readonly count: number;
  readonly examples: readonly RejectExample[];
}

export interface TableFigures {
  readonly table: string;
  readonly transform: TransformTableRecord | null;
  readonly load: LoadTableRecord | null;
  readonly rejects: readonly RejectReason[];
}

export interface RunReportData {
  readonly manifest: Manifest;
  readonly generatedAt: string;
  /** Per stage: its status as shown (staging/stage-writer.ts: `killed` when its process died while it ran). */
  readonly stages: readonly { readonly stage: StageName; readonly status: string; readonly startedAt: string | null; readonly endedAt: string | null; readonly seconds: number | null }[];
  /** When a stage was killed: what recovers the run and what `etl clean` does with it. */
  readonly hint: string | null;
  /** Each failed stage: the error its section recorded (scrubbed of credentials, cut to a line's length) and what to do. */
  readonly failures: readonly StageFailure[];
  readonly tables: readonly TableFigures[];
  /** Per collection, the documents extract could not stage (extract/<collection>.rejects.ndjson), by reason. */
  readonly extractRejects: readonly { readonly collection: string; readonly rejected: number; readonly rejects: readonly RejectReason[] }[];
  /** The count identities of the run (audit/reconcile.ts, what `etl verify` checks), each with its figures. */
  readonly identities: readonly Identity[];
  readonly watermarks: readonly { readonly collection: string; readonly from: string | null; readonly next: string; readonly basis: string | null; readonly documents: number }[];
  /** The latest runs, oldest first (for the charts), this one included. */
  readonly history: readonly RunHistoryEntry[];
}


export async function gatherRunReport(paths: RunPaths, manifest: Manifest, history: readonly RunHistoryEntry[], secrets: readonly string[]): Promise<RunReportData> {
  const tables: TableFigures[] = [];
  const tTables = manifest.stages.transform?.tables ?? {};
  const lTables = manifest.stages.load?.tables ?? {};
  for (const table of unique([...Object.keys(tTables), ...Object.keys(lTables)])) {
    const transform = tTables[table] ?? null;
    const load = lTables[table] ?? null;
    const rejects = [
      ...(transform && transform.rejected > 0 ? await rejectReasons(paths.transformRejects(table), 'transform', secrets) : []),
      ...(load?.rejects ? await rejectReasons(paths.loadRejects(table), 'load', secrets) : []),
    ];
    tables.push({ table, transform, load, rejects });
  }
  const extractRejects = [];
  for (const [collection, c] of Object.entries(manifest.stages.extract?.collections ?? {})) {
    if ((c.rejected ?? 0) > 0) extractRejects.push({ collection, rejected: c.rejected!, rejects: await rejectReasons(paths.extractRejects(collection), 'extract', secrets) });
  }
  // A repair run reads documents by `_id`, not a date window: it has no watermark to show.
  const watermarks = Object.entries(manifest.stages.extract?.collections ?? {}).flatMap(([collection, c]) =>
    c.watermark ? [{ collection, from: c.watermark.from, next: c.watermark.next, basis: c.watermark.next_basis ?? null, documents: c.documents }] : [],
  );
  const shown = await shownStagesOfRun(paths, manifest);
  const killed = killedStage(shown);
  const hint = killed ? killedHint(killed, paths.runId) : null;
  // A report that says "failed" says why; the configured secrets scrubbed again (a manifest from elsewhere),
  // and cut as a terminal line is: PostgreSQL's message may quote a value of any length.
  const failures = failedStages(manifest, paths.runId).map((f) => ({ ...f, message: printableLine(redactText(f.message, secrets)) }));
  return { manifest, generatedAt: new Date().toISOString(), stages: stageTimings(manifest, shown), hint, failures, tables, extractRejects, identities: reconcile(manifest), watermarks, history };
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

function stageTimings(m: Manifest, shown: Record<StageName, ShownStageStatus | null>): RunReportData['stages'] {
  return (['extract', 'transform', 'load'] as const).map((stage) => {
    const s = m.stages[stage];
    const ms = s?.started_at && s.ended_at ? Date.parse(s.ended_at) - Date.parse(s.started_at) : NaN;
    // A stage `etl run` had started and not recorded yet when its process died: its files say so.
    const status = s ? `${shown[stage]!}${stageNote(m, stage)}` : killedUnrecorded(m, stage, shown[stage]) ? 'killed: started, never ended, its files were being written' : STAGE_NOT_RUN;
    return { stage, status, startedAt: s?.started_at ?? null, endedAt: s?.ended_at ?? null, seconds: Number.isFinite(ms) ? ms / 1000 : null };
  });
}

/** What the status alone would hide: a dry run, or a transform that redid some tables and kept the others' (its times are the redo's). */
function stageNote(m: Manifest, stage: StageName): string {
  if (stage === 'load' && m.stages.load?.dry_run) return ' (dry run)';
  if (stage === 'load') return earlierLoadNote(m.stages.load?.skipped ?? []);
  const kept = stage === 'transform' ? (m.stages.transform?.tables_kept ?? []) : [];
  if (kept.length === 0) return '';
  const all = Object.keys(m.stages.transform?.tables ?? {}).length;
  return ` (--tables: ${all - kept.length} of ${all} table(s) redone; ${kept.length} kept from an earlier transform of the run)`;
}

/**
 * A run loaded in parts (`etl load --tables`, then the rest): the section, and so its times, are the
 * last load's; the tables an earlier one loaded are named with when.
 */
function earlierLoadNote(skipped: readonly { table: string; loaded_at: string }[]): string {
  if (skipped.length === 0) return '';
  const at = skipped.map((x) => x.loaded_at).sort()[0];
  return ` (the last load of the run: ${skipped.map((x) => x.table).sort().join(', ')} loaded by an earlier one at ${at})`;
}

/** Counts the lines of a rejects file by reason, keeping the first few of each as examples. */
async function rejectReasons(file: string, stage: RejectReason['stage'], secrets: readonly string[]): Promise<RejectReason[]> {
  const by = new Map<string, { count: number; examples: RejectExample[] }>();
  let lines;
  try {
    lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line === '') continue;
      const r = parseLine(line);
      // Load says what it did with the row (rejected it, set the reference NULL): part of the reason.
      const reason = `${typeof r.reason === 'string' ? r.reason : 'unknown'}${typeof r.action === 'string' ? ` (${r.action})` : ''}`;
      const entry = by.get(reason) ?? { count: 0, examples: [] };
      entry.count += 1;
      if (entry.examples.length < EXAMPLES_PER_REASON) entry.examples.push(example(r, secrets));
      by.set(reason, entry);
    }
  } catch {
    // A missing or unreadable rejects file: `etl verify` reports it; the report shows no examples.
  }
  return [...by].map(([reason, e]) => ({ stage, reason, count: e.count, examples: e.examples }));
}

function parseLine(line: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(line);
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The document (or CSV line) and column of a reject, and its value: cut short, scrubbed, secret columns masked. */
function example(r: Record<string, unknown>, secrets: readonly string[]): RejectExample {
  const id = typeof r._id === 'string' ? r._id : typeof r.line === 'number' ? `${String(r.file ?? 'csv')} line ${r.line}` : (readPlace(r) ?? '-');
  const column = typeof r.column === 'string' ? r.column : '-';
  const raw = r.value === undefined || r.value === null ? 'null' : typeof r.value === 'string' ? r.value : JSON.stringify(r.value);
  const value = SECRET_COLUMN.test(column) ? '***' : shorten(redactText(raw, secrets), VALUE_CHARS);
  // Extract's detail quotes field names (input): scrubbed and cut like a value, at a sentence's length.
  const detail = typeof r.detail === 'string' ? shorten(redactText(r.detail, secrets), DETAIL_CHARS) : null;
  return { id: shorten(redactText(id, secrets), VALUE_CHARS), column, value, detail };
}

/** Where extract read a document it could not stage (it may have no _id): its rank in the read, and its byte in a dump file. */
function readPlace(r: Record<string, unknown>): string | null {
  if (typeof r.position !== 'number') return null;
  const file = typeof r.file === 'string' ? ` of ${path.basename(r.file)}` : ' of the read';
  return `document ${r.position}${file}${typeof r.offset === 'number' ? ` at byte ${r.offset}` : ''}`;
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
