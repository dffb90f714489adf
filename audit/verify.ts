// `etl verify`: proves a staged run (folder or packed archive) is what its manifest says, on any
// machine, with no database: every file's sha256, bytes and line/row count recomputed by streaming,
// no file missing or added, the count identities of reconcile.ts, and transform re-run from the
// staged NDJSON with the stored pipeline.yaml giving byte-identical files.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { readManifest } from '../staging/manifest.ts';
import { runPaths } from '../staging/run-folder.ts';
import { measureFile, sha256OfFile, stagedFileKind } from './file-figures.ts';
import { filesUnder } from './folder-walk.ts';
import { doneStages, isSafeRelativePath, MANIFEST_FILE, PIPELINE_COPY, REPORT_FILE, recordedFiles, STAGES } from './manifest-files.ts';
import { reconcile } from './reconcile.ts';
import { openRunSource } from './run-source.ts';
import type { Mismatch, VerifyReport } from './verify-report.ts';

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
  const { signal } = options;
  const source = await openRunSource(options.target, signal);
  try {
    const paths = runPaths(path.dirname(source.dir), path.basename(source.dir));
    const manifest = await readManifest(paths);
    const mismatches: Mismatch[] = [];
    const notes: string[] = [];

    if (manifest.run_id !== path.basename(source.dir) && source.archive === null) {
      notes.push(`the folder is named ${path.basename(source.dir)} but holds run ${manifest.run_id}`);
    }
    const stages = {
      extract: manifest.stages?.extract?.status ?? null,
      transform: manifest.stages?.transform?.status ?? null,
      load: manifest.stages?.load?.status ?? null,
    };
    for (const stage of ['extract', 'transform'] as const) {
      if (stages[stage] !== 'done') mismatches.push({ check: 'stage', field: `stages.${stage}.status`, expected: 'done', found: stages[stage] ?? 'absent' });
    }
    if (stages.load === null) notes.push('not loaded: the run holds extract and transform only');
    else if (stages.load !== 'done') notes.push(`load is "${stages.load}": its files are not checked`);
    else if (manifest.stages.load?.dry_run) notes.push('load was a dry run');

    // The mapping: the stored copy must be the one the manifest names; today's file may differ.
    const storedFile = path.join(source.dir, PIPELINE_COPY);
    const storedSha = await sha256OfFile(storedFile, signal).catch(() => null);
    if (storedSha === null) {
      mismatches.push({ check: 'missing', file: PIPELINE_COPY, expected: `present (sha256 ${manifest.pipeline_sha256})`, found: 'missing' });
    } else if (storedSha !== manifest.pipeline_sha256) {
      mismatches.push({ check: 'pipeline', file: PIPELINE_COPY, field: 'pipeline_sha256', expected: `sha256 ${manifest.pipeline_sha256}`, found: `sha256 ${storedSha}` });
    }
    const transformSha = manifest.stages?.transform?.pipeline_sha256;
    if (transformSha && transformSha !== manifest.pipeline_sha256) {
      mismatches.push({ check: 'pipeline', field: 'stages.transform.pipeline_sha256', expected: manifest.pipeline_sha256, found: transformSha, detail: 'transform ran with another pipeline.yaml (--allow-pipeline-change), which the run does not store: its CSVs cannot be re-derived' });
    }
    let currentSha: string | null = null;
    const currentFile = options.currentPipelineFile ?? null;
    if (currentFile) currentSha = await sha256OfFile(currentFile, signal).catch(() => null);
    const currentDiffers = currentSha === null ? null : currentSha !== manifest.pipeline_sha256;
    if (currentDiffers) {
      notes.push(`${currentFile} differs from the pipeline.yaml this run was made with (sha256 ${currentSha!.slice(0, 12)}… ≠ ${manifest.pipeline_sha256.slice(0, 12)}…): verifying with the run's stored copy`);
    }

    // Files: recorded by finished stages → recomputed; anything else in the folder → extra.
    const checkedStages = doneStages(manifest);
    const toCheck = recordedFiles(manifest, checkedStages);
    const known = new Set<string>([MANIFEST_FILE, PIPELINE_COPY, REPORT_FILE, ...recordedFiles(manifest, STAGES).map((r) => r.record.file)]);
    const bytesTotal = toCheck.reduce((a, r) => a + (r.record.bytes ?? 0), 0);
    let bytesDone = 0;
    let filesDone = 0;
    let bytesChecked = 0;
    let missing = 0;
    const seen = new Set<string>();
    const measuredSha = new Map<string, string>();
    for (const { record, where } of toCheck) {
      signal?.throwIfAborted();
      if (!isSafeRelativePath(record.file)) {
        mismatches.push({ check: 'manifest', field: `${where}.file`, expected: 'a path inside the run folder', found: JSON.stringify(record.file) });
        continue;
      }
      if (seen.has(record.file)) {
        mismatches.push({ check: 'manifest', field: `${where}.file`, expected: 'each file recorded once', found: `${record.file} recorded twice` });
        continue;
      }
      seen.add(record.file);
      const file = path.join(source.dir, record.file);
      options.onProgress?.({ phase: 'files', file: record.file, filesDone, filesTotal: toCheck.length, bytesDone, bytesTotal });
      let measured;
      try {
        if (!(await stat(file)).isFile()) throw new Error('not a file');
        measured = await measureFile(file, stagedFileKind(record.file), {
          signal,
          onBytes: (n) => {
            bytesDone += n;
            options.onProgress?.({ phase: 'files', file: record.file, filesDone, filesTotal: toCheck.length, bytesDone, bytesTotal });
          },
        });
      } catch (error) {
        if (signal?.aborted) throw error;
        missing += 1;
        mismatches.push({ check: 'missing', file: record.file, field: where, expected: `present (${record.bytes} bytes, sha256 ${record.sha256})`, found: 'missing' });
        continue;
      }
      filesDone += 1;
      bytesChecked += measured.bytes;
      measuredSha.set(record.file, measured.sha256);
      if (measured.bytes !== record.bytes) mismatches.push({ check: 'bytes', file: record.file, field: `${where}.bytes`, expected: String(record.bytes), found: String(measured.bytes) });
      if (measured.sha256 !== record.sha256) mismatches.push({ check: 'sha256', file: record.file, field: `${where}.sha256`, expected: record.sha256, found: measured.sha256 });
      if (measured.parseError !== null) {
        mismatches.push({ check: 'parse', file: record.file, expected: 'valid CSV', found: measured.parseError });
      } else if (measured.records !== null && typeof record.records === 'number' && measured.records !== record.records) {
        const unit = stagedFileKind(record.file) === 'csv' ? 'rows' : 'lines';
        mismatches.push({ check: 'records', file: record.file, field: `${where}.records`, expected: `${record.records} ${unit}`, found: `${measured.records} ${unit}` });
      }
    }
    // Extract files that differ from the manifest: re-running transform on them would prove nothing.
    const extractFiles = new Set(toCheck.filter((r) => r.stage === 'extract').map((r) => r.record.file));
    const damagedExtract = new Set(mismatches.filter((m) => m.file !== undefined && extractFiles.has(m.file)).map((m) => m.file!));
    const extra = [...(await filesUnder(source.dir)).filter((f) => !known.has(f)), ...source.strayEntries, ...source.skippedEntries];
    for (const f of extra) mismatches.push({ check: 'extra', file: f, expected: 'not present (not in the manifest)', found: 'present' });

    const identities = reconcile(manifest);
    for (const id of identities.filter((i) => !i.ok)) {
      mismatches.push({ check: 'count', table: id.table, expected: id.name, found: id.figures });
    }

    const retransformState = { ran: false, skipped_because: null as string | null, tables: 0, files_compared: 0, files_identical: 0 };
    if (options.retransform === false) retransformState.skipped_because = 'not asked for';
    else if (stages.extract !== 'done' || stages.transform !== 'done') retransformState.skipped_because = 'extract and transform are not both done';
    else if (storedSha !== manifest.pipeline_sha256) retransformState.skipped_because = 'the stored pipeline.yaml is missing or not the one the manifest names';
    else if (transformSha && transformSha !== manifest.pipeline_sha256) retransformState.skipped_because = 'transform used another pipeline.yaml than the stored one';
    else if (damagedExtract.size > 0) retransformState.skipped_because = `the staged NDJSON does not match the manifest (${[...damagedExtract].join(', ')})`;
    else {
      options.onProgress?.({ phase: 'retransform', filesDone, filesTotal: toCheck.length, bytesDone, bytesTotal });
      // Loaded only when needed: the file checks alone must not pull in the transform stage.
      const { retransform } = await import('./retransform.ts');
      try {
        const result = await retransform(source.dir, manifest, storedFile, measuredSha, signal);
        Object.assign(retransformState, { ran: true, tables: result.tables, files_compared: result.filesCompared, files_identical: result.filesIdentical });
        mismatches.push(...result.mismatches);
      } catch (error) {
        if (signal?.aborted) throw error;
        retransformState.skipped_because = `transform failed on the staged files: ${(error as Error).message}`;
        mismatches.push({ check: 'retransform', expected: 'transform succeeds on the staged NDJSON', found: `it failed: ${(error as Error).message}` });
      }
    }

    return {
      ok: mismatches.length === 0,
      target: options.target,
      archive: source.archive,
      run_id: manifest.run_id,
      stages,
      pipeline: {
        manifest_sha256: manifest.pipeline_sha256,
        stored_sha256: storedSha,
        current_file: currentSha === null ? null : currentFile,
        current_sha256: currentSha,
        current_differs: currentDiffers,
      },
      files: { checked: filesDone, bytes: bytesChecked, missing, extra: extra.length },
      identities,
      retransform: retransformState,
      mismatches,
      notes,
    };
  } finally {
    await source.close();
  }
}

/** Every file under a run folder, relative with forward slashes. */
