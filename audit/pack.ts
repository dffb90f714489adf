// `etl pack`: one .tar.gz of a finished run, for people who must trust it without our databases or
// machines: manifest.json, the stored pipeline.yaml and every file the finished stages recorded.
// Refuses unfinished runs, and any file named like a secret or holding anything credential-shaped.
// Each file is read once: its bytes are scanned as tar packs them, into <out>.partial, which is
// renamed to <out> only when the scan found nothing (so nothing is shipped before the scan passed).
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, type ZlibOptions } from 'node:zlib';
import * as tar from 'tar';
import { StagingError } from '../errors/etl-error.ts';
import { AtomicFileSink, type FileFigures } from '../staging/atomic-file.ts';
import { readManifest, type Manifest, type StageName, type StageStatus } from '../staging/manifest.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import { filesUnder } from './folder-walk.ts';
import { doneStages, isSafeRelativePath, MANIFEST_FILE, PIPELINE_COPY, recordedFiles, REPORT_FILE, type RecordedFile } from './manifest-files.ts';
import { SecretScan, secretFileName, type ScanResult, type SecretFinding } from './secret-scan.ts';

export interface PackProgress {
  /** Writing the archive (each file scanned for secrets as it goes in). */
  phase: 'pack';
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
  const pipelineBytes = await readPipelineCopy(paths, manifest.pipeline_sha256, signal);

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
    [PIPELINE_COPY, pipelineBytes.length],
    ...(reportBytes === null ? [] : [[REPORT_FILE, reportBytes] as [string, number]]),
    ...records.map((r) => [r.record.file, r.record.bytes] as [string, number]),
  ]);
  const bytesTotal = [...sizes.values()].reduce((a, b) => a + b, 0);

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
async function readPipelineCopy(paths: RunPaths, expectedSha: string, signal?: AbortSignal): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(paths.pipelineCopy, { signal });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new StagingError('missing_file', `run ${paths.runId} has no ${PIPELINE_COPY}: an auditor could not re-run its transform`, {
      context: { file: paths.pipelineCopy },
      hint: 'the run was made by an older etl or damaged; make a new run with `etl extract`',
    });
  }
  const pipelineSha = createHash('sha256').update(bytes).digest('hex');
  if (pipelineSha !== expectedSha) {
    throw new StagingError('pipeline_mismatch', `${PIPELINE_COPY} of run ${paths.runId} is not the one its manifest names (sha256 ${pipelineSha} ≠ ${expectedSha})`, {
      context: { file: paths.pipelineCopy },
      hint: `check the run with \`etl verify ${paths.dir}\``,
    });
  }
  return bytes;
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
 * The secret check, made on the very bytes that go into the archive: tar's parser reads the
 * uncompressed archive back as it passes, and each entry's bytes go through a SecretScan. A file
 * named like a secret or anything credential-shaped (errors/redact.ts) in any of them refuses the
 * run, naming the file and the line.
 */
class ArchiveScan {
  private readonly findings: SecretFinding[] = [];
  private total = 0;
  private readonly parser = new tar.Parser({ strict: true });
  private failure: Error | null = null;

  constructor(
    private readonly paths: RunPaths,
    private readonly secrets: readonly string[],
  ) {
    this.parser.on('entry', (entry: tar.ReadEntry) => this.scanEntry(entry));
    this.parser.on('error', (error: Error) => (this.failure ??= error));
  }

  /** A pipeline step: the archive's bytes passed on unchanged, scanned as they go. */
  tap(): (chunks: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
    const scan = this;
    return async function* (chunks) {
      for await (const chunk of chunks) {
        // Entries are consumed as they are written (listeners below), so the parser never holds back.
        scan.parser.write(chunk);
        if (scan.failure) throw scan.failure;
        yield chunk;
      }
      scan.parser.end();
      if (scan.failure) throw scan.failure;
    };
  }

  /** Throws when anything was found. */
  refuseFindings(): void {
    const { findings, total, paths } = this;
    if (findings.length === 0) return;
    const more = total > findings.length ? `\n  … and ${total - findings.length} more` : '';
    throw new StagingError('secret_in_run', `run ${paths.runId} was not packed: it holds what looks like a secret:\n${findings.map((f) => `  ${f.file} ${f.where}: ${f.what}`).join('\n')}${more}`, {
      context: { file: path.join(paths.dir, findings[0]!.file), where: findings[0]!.where },
      hint: 'remove the secret from the run (and from wherever it came from: the source data, pipeline.yaml, the manifest) before shipping it',
    });
  }

  private scanEntry(entry: tar.ReadEntry): void {
    const file = entry.path.slice(this.paths.runId.length + 1);
    const named = secretFileName(file);
    if (named) this.add({ findings: [{ file, where: 'file name', what: named }], total: 1 });
    const scan = new SecretScan(file, this.secrets);
    entry.on('data', (chunk: Buffer) => scan.write(chunk));
    entry.on('end', () => this.add(scan.end()));
  }

  private add(found: ScanResult): void {
    this.findings.push(...found.findings);
    this.total += found.total;
  }
}

/**
 * The archive's bytes on their way to the file, counted. gzip's header names the OS that wrote it;
 * it says "unknown" (255) as tar's own portable gzip does, so the archive does not depend on the machine.
 */
function portableGzipBytes(onBytes: (n: number) => void): (chunks: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  const OS_BYTE = 9;
  return async function* (chunks) {
    let seen = 0;
    for await (const chunk of chunks) {
      if (seen <= OS_BYTE && OS_BYTE < seen + chunk.length) chunk[OS_BYTE - seen] = 255;
      seen += chunk.length;
      onBytes(chunk.length);
      yield chunk;
    }
  };
}

const READ_BYTES = 1 << 20;

async function writeArchive(
  paths: RunPaths,
  members: readonly string[],
  sizes: ReadonlyMap<string, number>,
  out: string,
  o: PackOptions & { bytesTotal: number },
  manifestText: string,
): Promise<FileFigures> {
  const sink = new AtomicFileSink(out);
  const scan = new ArchiveScan(paths, o.secrets ?? []);
  let filesDone = 0;
  let bytesDone = 0;
  let archiveBytes = 0;
  let lastEntry: string | null = null;
  const progress = () => o.onProgress?.({ phase: 'pack', filesDone, filesTotal: members.length, bytesDone, bytesTotal: o.bytesTotal, archiveBytes });
  try {
    // Entries are `<run-id>/…`, so unpacking the archive gives back a run folder of the same name.
    // Compressed here, not by tar: the scan reads the uncompressed stream (and zlib works off this thread).
    const archive = tar.create(
      {
        cwd: paths.stagingDir,
        portable: true,
        strict: true,
        // tar reads 16 MiB at a time by default: each read passes through the scan and zlib whole.
        maxReadSize: READ_BYTES,
        onWriteEntry: (entry) => {
          if (lastEntry !== null) bytesDone += sizes.get(lastEntry) ?? 0;
          lastEntry = entry.path.slice(paths.runId.length + 1);
          filesDone += 1;
          progress();
        },
      },
      members.map((m) => `${paths.runId}/${m}`),
    );
    const counted = portableGzipBytes((n) => {
      archiveBytes += n;
      progress();
    });
    // zlib compresses on the thread pool: room for a few reads lets it work while this thread scans
    // the next (zlib passes the stream options on to its Transform; its types do not list them).
    const gzip = createGzip({ chunkSize: 1 << 16, writableHighWaterMark: 4 * READ_BYTES } as ZlibOptions);
    await pipeline(archive, scan.tap(), gzip, counted, sink, { signal: o.signal });
    bytesDone = o.bytesTotal;
    progress();
    // Only now may the archive appear: <out>.partial is removed unless every file scanned clean.
    scan.refuseFindings();
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
