// `etl verify`: proves a staged run (folder or packed archive) is what its manifest says, on any
// machine, with no database: every file's sha256, bytes and line/row count recomputed by streaming,
// no file missing or added, the count identities of reconcile.ts, and transform re-run from the
// staged NDJSON with the stored pipeline.yaml giving byte-identical files. Everything it writes
// (an archive's files, the re-transform) goes into one temporary folder of its own, removed at the end.
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { readManifest, type FileRecord, type Manifest } from '../staging/manifest.ts';
import { runPaths, type RunPaths } from '../staging/run-folder.ts';
import { measureFile, recordsOf, sha256OfFile, stagedFileKind, type MeasuredFile } from './file-figures.ts';
import { filesUnder } from './folder-walk.ts';
import { doneStages, isSafeRelativePath, MANIFEST_FILE, PIPELINE_COPY, recordedFiles, REPORT_FILE, STAGES } from './manifest-files.ts';
import { reconcile } from './reconcile.ts';
import { checkRejectReasons } from './reject-reasons.ts';
import { REPORT_PARTS, reportDifferences } from './report-figures.ts';
import { openRunSource, type RunSource } from './run-source.ts';
import type { Mismatch, VerifyReport } from './verify-report.ts';
import { shownStages, stageAtWork } from '../staging/stage-writer.ts';
import { makeScratchDir } from '../staging/scratch-dir.ts';
import { StagingError } from '../errors/etl-error.ts';

export type { Mismatch, VerifyReport, Identity } from './verify-report.ts';

export interface VerifyProgress {
  phase: 'files' | 'retransform';
  /** The file being checked (relative to the run folder). */
  file?: string;
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface VerifyOptions {
  /** A run folder or an archive made by `etl pack`. */
  target: string;
  /** The pipeline.yaml the user would use today (to say whether it differs from the run's). */
  currentPipelineFile?: string | null;
  /** Re-run transform and compare (default true). */
  retransform?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: VerifyProgress) => void;
}

export async function verifyRun(options: VerifyOptions): Promise<VerifyReport> {
  const temp = await makeScratchDir('etl-verify-');
  try {
    const source = await openRunSource(options.target, temp, options.signal);
    return await verifySource(source, temp, options);
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

async function verifySource(source: RunSource, temp: string, options: VerifyOptions): Promise<VerifyReport> {
  const { signal } = options;
  const paths = runPaths(path.dirname(source.dir), path.basename(source.dir));
  const manifest = await readManifest(paths);
  if (source.archive === null) refuseRunAtWork(manifest);
  const mismatches: Mismatch[] = [];
  const notes: string[] = [];
  if (manifest.run_id !== path.basename(source.dir) && source.archive === null) {
    notes.push(`the folder is named ${path.basename(source.dir)} but holds run ${manifest.run_id}`);
  }
  const stages = stageStatuses(manifest, mismatches, notes);
  const pipeline = await checkPipeline(source, manifest, options, mismatches, notes);

  const files = await checkFiles(source, manifest, options, mismatches);
  const extra = [...(source.extraFiles ?? (await filesUnder(source.dir)).filter((f) => !files.known.has(f))), ...source.strayEntries, ...source.skippedEntries];
  for (const f of extra) mismatches.push({ check: 'extra', file: f, expected: 'not present (not in the manifest)', found: 'present' });

  const identities = reconcile(manifest);
  for (const id of identities.filter((i) => !i.ok)) mismatches.push({ check: 'count', table: id.table, expected: id.name, found: id.figures });
  await checkRejectReasons(source.dir, manifest, files.measuredSha, mismatches, signal);
  const report = await checkReport(source, manifest, mismatches, notes);

  const retransformState = await maybeRetransform(source, manifest, { stages, pipeline, files, temp }, options, mismatches, signal);
  if (source.archive === null) await refuseChangedWhileVerified(paths, manifest);
  return {
    ok: mismatches.length === 0,
    target: options.target,
    archive: source.archive,
    run_id: manifest.run_id,
    stages,
    pipeline: {
      manifest_sha256: manifest.pipeline_sha256,
      stored_sha256: pipeline.storedSha,
      current_file: pipeline.currentSha === null ? null : (options.currentPipelineFile ?? null),
      current_sha256: pipeline.currentSha,
      current_differs: pipeline.currentSha === null ? null : pipeline.currentSha !== manifest.pipeline_sha256,
    },
    files: { checked: files.checked, bytes: files.bytes, missing: files.missing, extra: extra.length },
    report,
    identities,
    retransform: retransformState,
    mismatches,
    notes,
  };
}

type Stages = VerifyReport['stages'];

/**
 * The report's figures against the manifest's. `etl pack` writes the report as it packs: in an
 * archive a difference is a change made since, and no report is one removed since. In a folder the
 * report may simply be older than the run's last stage (`etl report` after transform, then `etl
 * load`), or not written yet: said, not counted.
 */
async function checkReport(source: RunSource, manifest: Manifest, mismatches: Mismatch[], notes: string[]): Promise<VerifyReport['report']> {
  const parts = await reportDifferences(source.dir, manifest);
  const compared = REPORT_PARTS.map((p) => p.name);
  if (parts === null) {
    if (source.archive !== null) mismatches.push({ check: 'missing', file: REPORT_FILE, expected: 'present (`etl pack` puts the run\'s report first in every archive)', found: 'missing' });
    return { file: REPORT_FILE, present: false, compared: [], differs: [] };
  }
  if (parts.length > 0) {
    const found = `other figures in ${parts.join(', ')}`;
    if (source.archive !== null) mismatches.push({ check: 'report', file: REPORT_FILE, expected: 'the figures manifest.json gives', found });
    else notes.push(`${REPORT_FILE} shows ${found} than manifest.json gives (written before the run's last stage, or changed since): \`etl report --run ${manifest.run_id}\` writes it again`);
  }
  return { file: REPORT_FILE, present: true, compared, differs: parts };
}

/**
 * A run folder a live etl process of this host is writing (a stage `running`, its writer alive):
 * its files and manifest are still changing, so a check of them now would call a sound run damaged
 * (the `*.partial` files being written, as extra files). Verified once the stage has ended.
 */
function refuseRunAtWork(manifest: Manifest): void {
  const atWork = stageAtWork(manifest);
  if (!atWork) return;
  throw new StagingError('stage_running', `run ${manifest.run_id} cannot be verified while its ${atWork.stage} is at work in etl process ${atWork.pid} (since ${atWork.startedAt}): its files are still being written`, {
    hint: 'run `etl verify` again once it has ended (`etl status` shows the run)',
  });
}

/**
 * A run folder whose manifest changed while it was verified: a stage began (or ended) on it meanwhile
 * (`etl load`, `etl transform --run`), so what verify found (its `.partial` files as extra files,
 * figures of files being rewritten) describes no state of the run, and would call a sound run damaged.
 */
async function refuseChangedWhileVerified(paths: RunPaths, verified: Manifest): Promise<void> {
  const now = await readManifest(paths).catch(() => null);
  if (now !== null && isDeepStrictEqual(now, verified)) return;
  const atWork = stageAtWork(now);
  const what = now === null ? 'its manifest is gone' : atWork ? `its ${atWork.stage} began in etl process ${atWork.pid}` : 'its manifest was rewritten';
  throw new StagingError('run_changed', `run ${verified.run_id} changed while it was being verified (${what}): what verify found describes files being written, not the run`, {
    context: { file: paths.manifest },
    hint: 'run `etl verify` again once no stage is at work on it (`etl status` shows the run)',
  });
}

function stageStatuses(manifest: Manifest, mismatches: Mismatch[], notes: string[]): Stages {
  const stages = shownStages(manifest);
  for (const stage of ['extract', 'transform'] as const) {
    if (stages[stage] !== 'done') mismatches.push({ check: 'stage', field: `stages.${stage}.status`, expected: 'done', found: stages[stage] ?? 'absent' });
  }
  if (stages.load === null) notes.push('not loaded: the run holds extract and transform only');
  else if (stages.load !== 'done') notes.push(`load is "${stages.load}": its files are not checked`);
  else if (manifest.stages.load?.dry_run) notes.push('load was a dry run');
  return stages;
}

interface PipelineCheck {
  readonly storedFile: string;
  readonly storedSha: string | null;
  readonly transformSha: string | undefined;
  readonly currentSha: string | null;
}

/** The stored copy must be the one the manifest names; today's file may differ (a note). */
async function checkPipeline(source: RunSource, manifest: Manifest, options: VerifyOptions, mismatches: Mismatch[], notes: string[]): Promise<PipelineCheck> {
  const storedFile = path.join(source.dir, PIPELINE_COPY);
  const storedSha = await sha256OfFile(storedFile, options.signal).catch(() => null);
  if (storedSha === null) {
    mismatches.push({ check: 'missing', file: PIPELINE_COPY, expected: `present (sha256 ${manifest.pipeline_sha256})`, found: 'missing' });
  } else if (storedSha !== manifest.pipeline_sha256) {
    mismatches.push({ check: 'pipeline', file: PIPELINE_COPY, field: 'pipeline_sha256', expected: `sha256 ${manifest.pipeline_sha256}`, found: `sha256 ${storedSha}` });
  }
  const transformSha = manifest.stages?.transform?.pipeline_sha256;
  if (transformSha && transformSha !== manifest.pipeline_sha256) {
    mismatches.push({ check: 'pipeline', field: 'stages.transform.pipeline_sha256', expected: manifest.pipeline_sha256, found: transformSha, detail: 'transform ran with another pipeline.yaml (--allow-pipeline-change), which the run does not store: its CSVs cannot be re-derived' });
  }
  const currentFile = options.currentPipelineFile ?? null;
  const currentSha = currentFile ? await sha256OfFile(currentFile, options.signal).catch(() => null) : null;
  if (currentSha !== null && currentSha !== manifest.pipeline_sha256) {
    notes.push(`${currentFile} differs from the pipeline.yaml this run was made with (sha256 ${currentSha.slice(0, 12)}… ≠ ${manifest.pipeline_sha256.slice(0, 12)}…): verifying with the run's stored copy`);
  }
  return { storedFile, storedSha, transformSha, currentSha };
}

interface FilesCheck {
  readonly known: ReadonlySet<string>;
  readonly checked: number;
  readonly bytes: number;
  readonly missing: number;
  readonly measuredSha: ReadonlyMap<string, string>;
  /** Extract files that differ from the manifest: re-running transform on them would prove nothing. */
  readonly damagedExtract: ReadonlySet<string>;
}

/** Files recorded by finished stages: recomputed and compared with their records. */
async function checkFiles(source: RunSource, manifest: Manifest, options: VerifyOptions, mismatches: Mismatch[]): Promise<FilesCheck> {
  const toCheck = recordedFiles(manifest, doneStages(manifest));
  const known = new Set<string>([MANIFEST_FILE, PIPELINE_COPY, REPORT_FILE, ...recordedFiles(manifest, STAGES).map((r) => r.record.file)]);
  const bytesTotal = toCheck.reduce((a, r) => a + (r.record.bytes ?? 0), 0);
  const state = { checked: 0, bytes: 0, missing: 0, bytesDone: 0 };
  const measuredSha = new Map<string, string>();
  const seen = new Set<string>();
  const before = mismatches.length;
  for (const { record, where } of toCheck) {
    options.signal?.throwIfAborted();
    if (!isSafeRelativePath(record.file)) {
      mismatches.push({ check: 'manifest', field: `${where}.file`, expected: 'a path inside the run folder', found: JSON.stringify(record.file) });
      continue;
    }
    if (seen.has(record.file)) {
      mismatches.push({ check: 'manifest', field: `${where}.file`, expected: 'each file recorded once', found: `${record.file} recorded twice` });
      continue;
    }
    seen.add(record.file);
    const progress = () => options.onProgress?.({ phase: 'files', file: record.file, filesDone: state.checked, filesTotal: toCheck.length, bytesDone: state.bytesDone, bytesTotal });
    progress();
    const measured = await measureRecorded(source, record, options.signal, (n) => {
      state.bytesDone += n;
      progress();
    });
    if (measured === null) {
      state.missing += 1;
      mismatches.push({ check: 'missing', file: record.file, field: where, expected: `present (${record.bytes} bytes, sha256 ${record.sha256})`, found: 'missing' });
      continue;
    }
    if ('unread' in measured) {
      mismatches.push({ check: 'bytes', file: record.file, field: `${where}.bytes`, expected: String(record.bytes), found: `${measured.unread} (not read: an archive entry is read only at the size its manifest records)` });
      continue;
    }
    state.checked += 1;
    state.bytes += measured.bytes;
    measuredSha.set(record.file, measured.sha256);
    compareFigures(record, where, measured, mismatches);
  }
  const extractFiles = new Set(toCheck.filter((r) => r.stage === 'extract').map((r) => r.record.file));
  const damagedExtract = new Set(mismatches.slice(before).filter((m) => m.file !== undefined && extractFiles.has(m.file)).map((m) => m.file!));
  return { known, checked: state.checked, bytes: state.bytes, missing: state.missing, measuredSha, damagedExtract };
}

/** A folder's file, measured from disk; an archive's, as it was read from the archive. */
async function measureRecorded(source: RunSource, record: FileRecord, signal: AbortSignal | undefined, onBytes: (n: number) => void): Promise<MeasuredFile | { unread: number } | null> {
  const file = path.join(source.dir, record.file);
  const kind = stagedFileKind(record.file);
  if (source.outcomes) {
    const outcome = source.outcomes.get(record.file);
    if (!outcome) return null;
    if (outcome.kind === 'size') return { unread: outcome.bytes };
    onBytes(outcome.figures.bytes);
    // CSV rows were counted by parsing as the entry came out (quoted cells may hold newlines), with its hash.
    return { bytes: outcome.figures.bytes, sha256: outcome.figures.sha256, ...recordsOf(kind, outcome.figures, outcome.rows) };
  }
  try {
    if (!(await stat(file)).isFile()) return null;
    return await measureFile(file, kind, { signal, onBytes });
  } catch (error) {
    if (signal?.aborted) throw error;
    return null;
  }
}

function compareFigures(record: FileRecord, where: string, measured: MeasuredFile, mismatches: Mismatch[]): void {
  if (measured.bytes !== record.bytes) mismatches.push({ check: 'bytes', file: record.file, field: `${where}.bytes`, expected: String(record.bytes), found: String(measured.bytes) });
  if (measured.sha256 !== record.sha256) mismatches.push({ check: 'sha256', file: record.file, field: `${where}.sha256`, expected: record.sha256, found: measured.sha256 });
  if (measured.parseError !== null) {
    mismatches.push({ check: 'parse', file: record.file, expected: 'valid CSV', found: measured.parseError });
  } else if (measured.records !== null && typeof record.records === 'number' && measured.records !== record.records) {
    const unit = stagedFileKind(record.file) === 'csv' ? 'rows' : 'lines';
    mismatches.push({ check: 'records', file: record.file, field: `${where}.records`, expected: `${record.records} ${unit}`, found: `${measured.records} ${unit}` });
  }
}

interface RetransformInputs {
  readonly stages: Stages;
  readonly pipeline: PipelineCheck;
  readonly files: FilesCheck;
  readonly temp: string;
}

async function maybeRetransform(source: RunSource, manifest: Manifest, i: RetransformInputs, options: VerifyOptions, mismatches: Mismatch[], signal?: AbortSignal): Promise<VerifyReport['retransform']> {
  const state = { ran: false, skipped_because: null as string | null, tables: 0, files_compared: 0, files_identical: 0 };
  if (options.retransform === false) state.skipped_because = 'not asked for';
  else if (i.stages.extract !== 'done' || i.stages.transform !== 'done') state.skipped_because = 'extract and transform are not both done';
  else if (i.pipeline.storedSha !== manifest.pipeline_sha256) state.skipped_because = 'the stored pipeline.yaml is missing or not the one the manifest names';
  else if (i.pipeline.transformSha && i.pipeline.transformSha !== manifest.pipeline_sha256) state.skipped_because = 'transform used another pipeline.yaml than the stored one';
  else if (i.files.damagedExtract.size > 0) state.skipped_because = `the staged NDJSON does not match the manifest (${[...i.files.damagedExtract].join(', ')})`;
  if (state.skipped_because !== null) return state;

  options.onProgress?.({ phase: 'retransform', filesDone: i.files.checked, filesTotal: i.files.checked, bytesDone: i.files.bytes, bytesTotal: i.files.bytes });
  // Loaded only when needed: the file checks alone must not pull in the transform stage.
  const { retransform } = await import('./retransform.ts');
  try {
    const result = await retransform(source.dir, manifest, i.pipeline.storedFile, i.files.measuredSha, path.join(i.temp, 'retransform'), signal);
    Object.assign(state, { ran: true, tables: result.tables, files_compared: result.filesCompared, files_identical: result.filesIdentical });
    mismatches.push(...result.mismatches);
  } catch (error) {
    if (signal?.aborted) throw error;
    state.skipped_because = `transform failed on the staged files: ${(error as Error).message}`;
    mismatches.push({ check: 'retransform', expected: 'transform succeeds on the staged NDJSON', found: `it failed: ${(error as Error).message}` });
  }
  return state;
}

