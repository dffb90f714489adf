// `etl pack`: one .tar.gz of a finished run, for people who must trust it without our databases or
// machines: manifest.json, the stored pipeline.yaml and every file the finished stages recorded.
// Refuses unfinished runs, and any file named like a secret or holding anything credential-shaped
// (every file that would go in is scanned); the archive appears whole or not at all (<out>.partial,
// then rename).
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { StagingError } from '../errors/etl-error.ts';
import { AtomicFileSink, type FileFigures } from '../staging/atomic-file.ts';
import { readManifest, type Manifest, type StageName, type StageStatus } from '../staging/manifest.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import { sha256OfFile } from './file-figures.ts';
import { filesUnder } from './folder-walk.ts';
import { doneStages, isSafeRelativePath, MANIFEST_FILE, PIPELINE_COPY, recordedFiles, REPORT_FILE, type RecordedFile } from './manifest-files.ts';
import { scanFile, secretFileName, type SecretFinding } from './secret-scan.ts';

export interface PackProgress {
  /** `scan`: reading every file for secrets first; `pack`: writing the archive. */
  phase: 'scan' | 'pack';
  filesDone: number;
  filesTotal: number;
  /** Bytes of the run's files handed to tar so far, of bytesTotal. */
  bytesDone: number;
  bytesTotal: number;
  /** Compressed bytes written to the archive so far. */
  archiveBytes: number;
}

export interface PackOptions {
  stagingDir: string;
  /** The run to pack (default: the one `latest` points at). */
  runId?: string | null;
  /** Archive path (default: <staging>/<run-id>.tar.gz). */
  out?: string | null;
  /** Configured secret values: refused if any appears in the packed text files. */
  secrets?: readonly string[];
  signal?: AbortSignal;
  onProgress?: (p: PackProgress) => void;
}

export interface PackReport {
  run_id: string;
  archive: string;
  /** Size and sha256 of the archive, for whoever receives it. */
  bytes: number;
  sha256: string;
  files: number;
  /** Bytes of the run's files before compression. */
  content_bytes: number;
  stages: Record<StageName, StageStatus | null>;
  /** Stages whose files are in the archive (extract and transform always; load when done). */
  stages_included: StageName[];
  /** Files of the run folder that are not in the archive (not recorded by a finished stage). */
  left_out: string[];
}

export async function packRun(options: PackOptions): Promise<PackReport> {
  const { signal } = options;
  const paths = await resolveRun(options.stagingDir, options.runId);
  const manifestText = await readFile(paths.manifest, 'utf8');
  const manifest = await readManifest(paths);
  const stages = checkStages(paths, manifest);
  const pipelineText = await readPipelineCopy(paths, manifest.pipeline_sha256, signal);

  const included = doneStages(manifest);
  const records = recordedFiles(manifest, included);
  await checkRecords(paths, records);
  // The HTML report (etl report), when the run has one, is the auditor's first page: packed first.
  const reportBytes = await stat(path.join(paths.dir, REPORT_FILE)).then((st) => (st.isFile() ? st.size : null), () => null);
  const report = reportBytes === null ? [] : [REPORT_FILE];
  const members = [...report, MANIFEST_FILE, PIPELINE_COPY, ...records.map((r) => r.record.file)];
  const memberSet = new Set(members);
  const leftOut = (await filesUnder(paths.dir)).filter((f) => !memberSet.has(f));
  const sizes = new Map<string, number>([
    [MANIFEST_FILE, Buffer.byteLength(manifestText)],
    [PIPELINE_COPY, Buffer.byteLength(pipelineText)],
    ...(reportBytes === null ? [] : [[REPORT_FILE, reportBytes] as [string, number]]),
    ...records.map((r) => [r.record.file, r.record.bytes] as [string, number]),
  ]);
  const bytesTotal = [...sizes.values()].reduce((a, b) => a + b, 0);
  await refuseSecrets(paths, members, { ...options, bytesTotal });

  const out = path.resolve(options.out ?? path.join(paths.stagingDir, `${paths.runId}.tar.gz`));
  await mkdir(path.dirname(out), { recursive: true });
  const figures = await writeArchive(paths, members, sizes, out, { ...options, bytesTotal }, manifestText);
  return {
    run_id: paths.runId,
    archive: out,
    bytes: figures.bytes,
    sha256: figures.sha256,
    files: members.length,
    content_bytes: bytesTotal,
    stages,
    stages_included: included,
    left_out: leftOut,
  };
}

function checkStages(paths: RunPaths, manifest: Manifest): Record<StageName, StageStatus | null> {
  const stages = {
    extract: manifest.stages?.extract?.status ?? null,
    transform: manifest.stages?.transform?.status ?? null,
    load: manifest.stages?.load?.status ?? null,
  };
  const describe = (Object.keys(stages) as StageName[]).map((s) => `${s} ${stages[s] ?? 'not run'}`).join(', ');
  if (stages.extract !== 'done' || stages.transform !== 'done') {
    throw new StagingError('stage_not_done', `run ${paths.runId} cannot be packed: extract and transform must be done (${describe})`, {
      context: { file: paths.manifest },
      hint: stages.extract !== 'done' ? 'run `etl extract` to make a complete run' : `run \`etl transform --run ${paths.runId}\` first`,
    });
  }
  if (stages.load === 'running') {
    throw new StagingError('stage_running', `run ${paths.runId} cannot be packed while its load is running (${describe})`, {
      context: { file: paths.manifest },
      hint: 'wait for `etl load` to finish; a load that crashed must be run again before packing',
    });
  }
  return stages;
}

/** The mapping the run was made with travels with it; it must be the one the manifest names. */
async function readPipelineCopy(paths: RunPaths, expectedSha: string, signal?: AbortSignal): Promise<string> {
  let pipelineText: string;
  try {
    pipelineText = await readFile(paths.pipelineCopy, 'utf8');
  } catch {
    throw new StagingError('missing_file', `run ${paths.runId} has no ${PIPELINE_COPY}: an auditor could not re-run its transform`, {
      context: { file: paths.pipelineCopy },
      hint: 'the run was made by an older etl or damaged; make a new run with `etl extract`',
    });
  }
  const pipelineSha = await sha256OfFile(paths.pipelineCopy, signal);
  if (pipelineSha !== expectedSha) {
    throw new StagingError('pipeline_mismatch', `${PIPELINE_COPY} of run ${paths.runId} is not the one its manifest names (sha256 ${pipelineSha} ≠ ${expectedSha})`, {
      context: { file: paths.pipelineCopy },
      hint: `check the run with \`etl verify ${paths.dir}\``,
    });
  }
  return pipelineText;
}

/** Every recorded file: inside the run folder, present, of the recorded size. */
async function checkRecords(paths: RunPaths, records: readonly RecordedFile[]): Promise<void> {
  for (const { record, where } of records) {
    if (!isSafeRelativePath(record.file)) {
      throw new StagingError('bad_manifest', `manifest of run ${paths.runId} names a file outside the run folder at ${where}: ${JSON.stringify(record.file)}`, { context: { file: paths.manifest } });
    }
    const size = await stat(path.join(paths.dir, record.file)).then((s) => (s.isFile() ? s.size : -1), () => null);
    if (size !== record.bytes) {
      throw new StagingError('damaged_run', `run ${paths.runId} is damaged: ${record.file} ${size === null ? 'is missing' : `has ${size} bytes, the manifest says ${record.bytes}`}`, {
        context: { file: path.join(paths.dir, record.file) },
        hint: `see every difference with \`etl verify ${paths.dir}\``,
      });
    }
  }
}

/**
 * Every file that would go in is read once, as a stream, before the archive is made: a file named
 * like a secret or anything credential-shaped in any of them (errors/redact.ts) refuses the run,
 * naming the file and the line.
 */
async function refuseSecrets(paths: RunPaths, members: readonly string[], o: PackOptions & { bytesTotal: number }): Promise<void> {
  const findings: SecretFinding[] = [];
  let total = 0;
  let bytesDone = 0;
  for (const [i, file] of members.entries()) {
    const named = secretFileName(file);
    if (named) {
      findings.push({ file, where: 'file name', what: named });
      total += 1;
    }
    const scanned = await scanFile(path.join(paths.dir, file), file, o.secrets ?? [], o.signal, (n) => {
      bytesDone += n;
      o.onProgress?.({ phase: 'scan', filesDone: i, filesTotal: members.length, bytesDone, bytesTotal: o.bytesTotal, archiveBytes: 0 });
    });
    findings.push(...scanned.findings);
    total += scanned.total;
  }
  if (findings.length === 0) return;
  const more = total > findings.length ? `\n  … and ${total - findings.length} more` : '';
  throw new StagingError('secret_in_run', `run ${paths.runId} was not packed: it holds what looks like a secret:\n${findings.map((f) => `  ${f.file} ${f.where}: ${f.what}`).join('\n')}${more}`, {
    context: { file: path.join(paths.dir, findings[0]!.file), where: findings[0]!.where },
    hint: 'remove the secret from the run (and from wherever it came from: the source data, pipeline.yaml, the manifest) before shipping it',
  });
}

async function writeArchive(
  paths: RunPaths,
  members: readonly string[],
  sizes: ReadonlyMap<string, number>,
  out: string,
  o: PackOptions & { bytesTotal: number },
  manifestText: string,
): Promise<FileFigures> {
  const sink = new AtomicFileSink(out);
  let filesDone = 0;
  let bytesDone = 0;
  let archiveBytes = 0;
  let lastEntry: string | null = null;
  const progress = () => o.onProgress?.({ phase: 'pack', filesDone, filesTotal: members.length, bytesDone, bytesTotal: o.bytesTotal, archiveBytes });
  try {
    // Entries are `<run-id>/…`, so unpacking the archive gives back a run folder of the same name.
    const archive = tar.create(
      {
        gzip: true,
        cwd: paths.stagingDir,
        portable: true,
        strict: true,
        onWriteEntry: (entry) => {
          if (lastEntry !== null) bytesDone += sizes.get(lastEntry) ?? 0;
          lastEntry = entry.path.slice(paths.runId.length + 1);
          filesDone += 1;
          progress();
        },
      },
      members.map((m) => `${paths.runId}/${m}`),
    );
    await pipeline(
      archive,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          archiveBytes += chunk.length;
          progress();
          yield chunk;
        }
      },
      sink,
      { signal: o.signal },
    );
    bytesDone = o.bytesTotal;
    progress();
    // Packed bytes must be the bytes scanned: a manifest rewritten meanwhile (a stage started) is refused.
    if ((await readFile(paths.manifest, 'utf8')) !== manifestText) {
      throw new StagingError('run_changed', `run ${paths.runId} changed while it was being packed (its manifest was rewritten)`, {
        context: { file: paths.manifest },
        hint: 'pack it again once no stage is running on it',
      });
    }
    return await sink.commit();
  } catch (error) {
    await sink.discard();
    throw error;
  }
}
