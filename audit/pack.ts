// `etl pack`: one .tar.gz of a finished run, for people who must trust it without our databases or
// machines: its HTML report (written as it packs), manifest.json, the stored pipeline.yaml and every
// file the finished stages recorded.
// Refuses unfinished runs, and any file named like a secret or holding anything credential-shaped.
// Each file is read once: its bytes are scanned, and only bytes scanned clean go into <out>.partial,
// renamed to <out> when the whole run is in and nothing was found. At the first finding nothing more
// is written and <out>.partial is removed; the rest is still scanned, to name every finding.
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { StagingError } from '../errors/etl-error.ts';
import type { FileFigures } from '../staging/atomic-file.ts';
import { describeStages, readManifest, type Manifest, type StageName } from '../staging/manifest.ts';
import { killedHint, shownStages, stageAtWork, type ShownStageStatus } from '../staging/stage-writer.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import { filesUnder } from './folder-walk.ts';
import { doneStages, isSafeRelativePath, MANIFEST_FILE, PIPELINE_COPY, recordedFiles, REPORT_FILE, type RecordedFile } from './manifest-files.ts';
import { SecretScan, secretFileName, type ScanResult, type SecretFinding } from './secret-scan.ts';
import { ArchiveWriter, type EntryStat } from './archive-writer.ts';
import { makeFolders } from '../staging/make-folders.ts';
import { writeRunReport } from '../report/write-report.ts';

export interface PackProgress {
  /**
   * 'pack': writing the archive, each file scanned for secrets as it goes in; 'scan': something was
   * found, nothing is written any more, the rest is scanned to name every finding.
   */
  phase: 'pack' | 'scan';
  filesDone: number;
  filesTotal: number;
  /** Bytes of the run's files read (and scanned) so far, of bytesTotal. */
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
  /** Told at once when a stale <archive>.partial is removed (the words of `removed_partial`). */
  onNote?: (text: string) => void;
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
  stages: Record<StageName, ShownStageStatus | null>;
  /** Stages whose files are in the archive (extract and transform always; load when done). */
  stages_included: StageName[];
  /** Files of the run folder that are not in the archive (not recorded by a finished stage). */
  left_out: string[];
  /** A stale <archive>.partial (left by a pack that was killed) removed before packing, said in words; else null. */
  removed_partial: string | null;
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
  // The HTML report, the auditor's first page, written now and packed first: every archive holds
  // one, so `etl verify` calls an archive without it incomplete.
  const reportBytes = (await writeRunReport({ stagingDir: paths.stagingDir, runId: paths.runId, secrets: options.secrets ?? [] })).bytes;
  const report = [REPORT_FILE];
  const members = [...report, MANIFEST_FILE, PIPELINE_COPY, ...records.map((r) => r.record.file)];
  const memberSet = new Set(members);
  const leftOut = (await filesUnder(paths.dir)).filter((f) => !memberSet.has(f));
  const bytesTotal = Buffer.byteLength(manifestText) + pipelineBytes.length + reportBytes + records.reduce((a, r) => a + r.record.bytes, 0);

  const out = path.resolve(options.out ?? path.join(paths.stagingDir, `${paths.runId}.tar.gz`));
  await makeFolders(path.dirname(out));
  // manifest.json and pipeline.yaml go in as read and checked above (each file is read once).
  const inMemory = new Map([[MANIFEST_FILE, Buffer.from(manifestText)], [PIPELINE_COPY, pipelineBytes]]);
  const toPack = members.map((file) => ({ file, bytes: inMemory.get(file) }));
  const { figures, removedPartial } = await writeArchive(paths, toPack, out, { ...options, bytesTotal }, manifestText);
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
    removed_partial: removedPartial,
  };
}

function checkStages(paths: RunPaths, manifest: Manifest): Record<StageName, ShownStageStatus | null> {
  const stages = shownStages(manifest);
  const describe = describeStages(stages);
  if (stages.extract !== 'done' || stages.transform !== 'done') {
    throw new StagingError('stage_not_done', `run ${paths.runId} cannot be packed: extract and transform must be done (${describe})`, {
      context: { file: paths.manifest },
      hint: atWorkHint(manifest) ?? (stages.extract !== 'done' ? 'run `etl extract` to make a complete run' : `run \`etl transform --run ${paths.runId}\` first`),
    });
  }
  if (stages.load === 'killed') {
    throw new StagingError('stage_running', `run ${paths.runId} cannot be packed: its load was killed (${describe})`, {
      context: { file: paths.manifest },
      hint: killedHint('load', paths.runId),
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

/** When another live etl process is still extracting or transforming the run: to wait for it, not to run that stage again. */
function atWorkHint(manifest: Manifest): string | null {
  const atWork = stageAtWork(manifest, ['extract', 'transform']);
  if (!atWork) return null;
  return `its ${atWork.stage} is at work in etl process ${atWork.pid}: wait for it to end (\`etl status\` shows the run), then ${atWork.stage === 'extract' ? 'transform the run and pack it' : 'pack it'}`;
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

/** Every finding of the run's files, and the refusal that names them. */
class Findings {
  private readonly shown: SecretFinding[] = [];
  private total = 0;

  constructor(private readonly paths: RunPaths) {}

  add(found: ScanResult): void {
    this.shown.push(...found.findings);
    this.total += found.total;
  }

  /** Throws when anything was found. */
  refuse(): void {
    const { shown, total, paths } = this;
    if (shown.length === 0) return;
    const more = total > shown.length ? `\n  … and ${total - shown.length} more` : '';
    throw new StagingError('secret_in_run', `run ${paths.runId} was not packed: it holds what looks like a secret:\n${shown.map((f) => `  ${f.file} ${f.where}: ${f.what}`).join('\n')}${more}`, {
      context: { file: path.join(paths.dir, shown[0]!.file), where: shown[0]!.where },
      hint: 'remove the secret from the run (and from wherever it came from: the source data, pipeline.yaml, the manifest) before shipping it',
    });
  }
}

/** A file's bytes read but not yet scanned for good (the end of an unfinished line): held back from the archive. */
class HeldBytes {
  private readonly chunks: Buffer[] = [];
  /** File offset of the first held byte. */
  private start = 0;

  add(chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  /** Takes the held bytes before file offset `upTo`. */
  take(upTo: number): Buffer[] {
    const out: Buffer[] = [];
    while (this.chunks.length > 0 && this.start < upTo) {
      const first = this.chunks[0]!;
      const n = Math.min(first.length, upTo - this.start);
      out.push(first.subarray(0, n));
      this.start += n;
      if (n === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    }
    return out;
  }
}

const READ_BYTES = 1 << 20;

/** A member of the archive: read from the run folder, or already in memory (read and checked before). */
interface Member {
  readonly file: string;
  readonly bytes?: Buffer;
}

/**
 * Reads each member once: its bytes are scanned, and only bytes scanned clean go into the archive.
 * At the first finding nothing more is written and <out>.partial is removed at once; the rest of the
 * run is still scanned (read, never written), so the refusal names every finding.
 */
class Packing {
  readonly findings: Findings;
  writer: ArchiveWriter | null = null;
  private filesDone = 0;
  private bytesDone = 0;
  private archiveBytes = 0;
  /** Something was found: nothing is written any more. */
  private refused = false;

  constructor(
    private readonly paths: RunPaths,
    private readonly filesTotal: number,
    private readonly o: PackOptions & { bytesTotal: number },
  ) {
    this.findings = new Findings(paths);
  }

  progress(): void {
    const phase = this.refused ? 'scan' : 'pack';
    const { filesDone, filesTotal, bytesDone, archiveBytes } = this;
    this.o.onProgress?.({ phase, filesDone, filesTotal, bytesDone, bytesTotal: this.o.bytesTotal, archiveBytes });
  }

  /** Opens the archive, unless a file named like a secret already refuses the run (named at its turn). */
  async open(members: readonly Member[], out: string): Promise<string | null> {
    this.refused = members.some(({ file }) => secretFileName(file) !== null);
    if (this.refused) return null;
    const opened = await ArchiveWriter.open(out, this.o.signal, (n) => {
      this.archiveBytes += n;
      this.progress();
    });
    this.writer = opened.writer;
    if (opened.removedPartial !== null) this.o.onNote?.(opened.removedPartial);
    return opened.removedPartial;
  }

  async member({ file, bytes }: Member): Promise<void> {
    const source = await readMember(path.join(this.paths.dir, file), bytes, this.o.signal).catch((e: unknown) => {
      throw isGone(e) ? removedWhilePacked(this.paths, file) : e;
    });
    const scan = new SecretScan(file, this.o.secrets ?? []);
    const held = new HeldBytes();
    const named = secretFileName(file);
    if (named) this.findings.add({ findings: [{ file, where: 'file name', what: named }], total: 1 });
    this.filesDone += 1;
    this.writer?.startEntry(`${this.paths.runId}/${file}`, source.stat);
    let read = 0;
    for await (const chunk of source.chunks) {
      read += chunk.length;
      if (read > source.stat.size) throw changedWhilePacked(this.paths, file, `${file} changed size`);
      scan.write(chunk);
      this.bytesDone += chunk.length;
      held.add(chunk);
      await this.send(scan.found > 0, held.take(scan.cleared));
      this.progress();
    }
    if (read !== source.stat.size) throw changedWhilePacked(this.paths, file, `${file} changed size`);
    const result = scan.end();
    this.findings.add(result);
    await this.send(result.total > 0, held.take(read));
    this.writer?.endEntry();
  }

  /** Writes bytes scanned clean; at the first finding, stops writing and removes the archive. */
  private async send(found: boolean, pieces: readonly Buffer[]): Promise<void> {
    if (this.writer === null) return;
    if (found) {
      const writer = this.writer;
      this.writer = null;
      this.refused = true;
      await writer.discard();
      return this.progress();
    }
    for (const piece of pieces) await this.writer.write(piece);
  }
}

/** A member's bytes, read once, and what its tar header says (size, mode, mtime). */
async function readMember(file: string, bytes: Buffer | undefined, signal?: AbortSignal): Promise<{ stat: EntryStat; chunks: AsyncIterable<Buffer> | Iterable<Buffer> }> {
  if (bytes !== undefined) {
    const st = await stat(file);
    return { stat: { size: bytes.length, mode: st.mode, mtime: st.mtime }, chunks: [bytes] };
  }
  const handle = await open(file, 'r');
  try {
    const st = await handle.stat();
    return { stat: { size: st.size, mode: st.mode, mtime: st.mtime }, chunks: handle.createReadStream({ highWaterMark: READ_BYTES, signal }) };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** `what`: the file that changed, said how (`users.csv changed size`, `its manifest was rewritten`). */
function changedWhilePacked(paths: RunPaths, file: string, what: string): StagingError {
  return new StagingError('run_changed', `run ${paths.runId} changed while it was being packed (${what})`, {
    context: { file: path.join(paths.dir, file) },
    hint: 'pack it again once no stage is running on it',
  });
}

const isGone = (error: unknown): boolean => (error as NodeJS.ErrnoException | null)?.code === 'ENOENT';

/**
 * A file of the run gone while the run was packed: another etl command (`etl clean`, which does not
 * know a pack is reading a run) removed the run. Said as such, not as an internal ENOENT.
 */
function removedWhilePacked(paths: RunPaths, file: string): StagingError {
  return new StagingError('run_changed', `run ${paths.runId} was removed while it was being packed (${file} is gone): nothing was written`, {
    context: { file: path.join(paths.dir, file) },
    hint: 'another etl command removed it, such as `etl clean` (which removes superseded runs: `--keep N` keeps the newest N); pack a run before cleaning it',
  });
}

async function writeArchive(paths: RunPaths, members: readonly Member[], out: string, o: PackOptions & { bytesTotal: number }, manifestText: string): Promise<{ figures: FileFigures; removedPartial: string | null }> {
  const packing = new Packing(paths, members.length, o);
  try {
    const removedPartial = await packing.open(members, out);
    // Entries are `<run-id>/…`, so unpacking the archive gives back a run folder of the same name.
    for (const member of members) await packing.member(member);
    packing.progress();
    packing.findings.refuse();
    const writer = packing.writer!;
    await writer.end();
    // Packed bytes must be the bytes scanned: a manifest rewritten meanwhile (a stage started) is refused.
    const manifestNow = await readFile(paths.manifest, 'utf8').catch((e: unknown) => {
      throw isGone(e) ? removedWhilePacked(paths, MANIFEST_FILE) : e;
    });
    if (manifestNow !== manifestText) throw changedWhilePacked(paths, MANIFEST_FILE, 'its manifest was rewritten');
    return { figures: await writer.commit(), removedPartial };
  } catch (error) {
    await packing.writer?.discard();
    throw error;
  }
}
