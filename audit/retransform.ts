// The strongest check verify makes: run transform again, from the run's own NDJSON and its own
// pipeline.yaml, in a private temporary staging folder, and compare the files it writes with the
// staged ones byte for byte. Staged CSVs are then known to be exactly what the staged documents
// and the stored mapping produce — no database needed.
import { copyFile, link, rm } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { loadPipeline } from '../model/load-pipeline.ts';
import { runTransform } from '../transform/index.ts';
import { readManifest, writeManifest, type FileRecord, type Manifest } from '../staging/manifest.ts';
import { runPaths, type RunPaths } from '../staging/run-folder.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { recordedFiles } from './manifest-files.ts';
import type { Mismatch } from './verify-report.ts';
import { makeFolders } from '../staging/make-folders.ts';

export interface RetransformResult {
  tables: number;
  filesCompared: number;
  filesIdentical: number;
  mismatches: Mismatch[];
}

/**
 * `runDir` holds the run being verified (its manifest already read as `manifest`); `pipelineFile`
 * is its stored pipeline.yaml, already checked against the manifest's sha256; `stagedSha256` holds
 * the sha256 verify measured for each staged file (by run-relative path), so none is read twice.
 * `root` is inside verify's own temporary folder: nothing is written anywhere else.
 */
export async function retransform(
  runDir: string,
  manifest: Manifest,
  pipelineFile: string,
  stagedSha256: ReadonlyMap<string, string>,
  /** A folder of the caller's (created here, removed at the end) for the re-transformed run. */
  root: string,
  signal?: AbortSignal,
): Promise<RetransformResult> {
  const original = manifest.stages.transform!;
  const tables = Object.keys(original.tables);
  await makeFolders(root);
  try {
    const paths = await stageAsExtracted(runDir, manifest, pipelineFile, root);
    const model = await loadPipeline(paths.pipelineCopy);
    await runTransform({ model, stagingDir: root, runId: manifest.run_id, tables, signal });
    const redone = (await readManifest(paths)).stages.transform;
    const result: RetransformResult = { tables: tables.length, filesCompared: 0, filesIdentical: 0, mismatches: [] };
    const sides: Sides = { runDir, freshDir: paths.dir, stagedSha256, signal };
    for (const table of tables) await compareTable(table, original.tables[table]!, redone?.tables?.[table], sides, result);
    return result;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The run as it stood after extract, under `root`: transform and load sections dropped, extract files linked. */
async function stageAsExtracted(runDir: string, manifest: Manifest, pipelineFile: string, root: string): Promise<RunPaths> {
  const paths = runPaths(root, manifest.run_id);
  await makeFolders(paths.extractDir);
  await makeFolders(paths.transformDir);
  await makeFolders(paths.loadDir);
  const copy: Manifest = structuredClone(manifest);
  copy.stages = { extract: copy.stages.extract! };
  forgetRejectsAnOlderTransformIgnored(copy, manifest);
  await writeManifest(paths, copy);
  await linkOrCopy(pipelineFile, paths.pipelineCopy);
  for (const { record } of recordedFiles(manifest, ['extract'])) {
    const target = path.join(paths.dir, record.file);
    await makeFolders(path.dirname(target));
    await linkOrCopy(path.join(runDir, record.file), target);
  }
  return paths;
}

/**
 * A transform made before transform named the documents extract refused in the keys files (its
 * records have no `extract_rejected`) is made again the same way: without the extract rejects.
 */
function forgetRejectsAnOlderTransformIgnored(copy: Manifest, manifest: Manifest): void {
  const records = Object.values(manifest.stages.transform?.tables ?? {});
  for (const [collection, c] of Object.entries(copy.stages.extract?.collections ?? {})) {
    const fed = records.filter((t) => t.collection === collection);
    if (c.rejects && fed.length > 0 && fed.every((t) => t.extract_rejected === undefined)) delete c.rejects;
  }
}

/** Where the two versions of a run's files are, and what verify already measured of the staged ones. */
interface Sides {
  readonly runDir: string;
  readonly freshDir: string;
  readonly stagedSha256: ReadonlyMap<string, string>;
  readonly signal: AbortSignal | undefined;
}

/** A table's figures and files, staged against re-transformed, added to `result`. */
async function compareTable(table: string, before: TransformTableRecord, after: TransformTableRecord | undefined, sides: Sides, result: RetransformResult): Promise<void> {
  if (!after) {
    result.mismatches.push({ check: 'retransform', table, expected: 'table transformed', found: 'transform produced no such table' });
    return;
  }
  result.mismatches.push(...compareFigures(table, before, after));
  for (const [role, [b, a]] of fileSlots(before, after)) {
    if (!b || !a) {
      result.mismatches.push({ check: 'retransform', table, file: (b ?? a)!.file, expected: b ? `a ${role} file` : `no ${role} file`, found: a ? `a ${role} file` : `no ${role} file` });
      continue;
    }
    result.filesCompared += 1;
    const mismatch = await compareFile(table, b, a, sides);
    if (mismatch) result.mismatches.push(mismatch);
    else result.filesIdentical += 1;
  }
}

/** null when the staged file is the re-transformed one, else the mismatch with its first differing line. */
async function compareFile(table: string, staged: FileRecord, fresh: FileRecord, sides: Sides): Promise<Mismatch | null> {
  // Transform hashed the file as it wrote it (its record); the staged file's hash and counts were measured already.
  const stagedSha = sides.stagedSha256.get(staged.file) ?? null;
  if (stagedSha === fresh.sha256) return null;
  const diff = stagedSha !== null ? await firstDifference(path.join(sides.freshDir, fresh.file), path.join(sides.runDir, staged.file), sides.signal) : null;
  return {
    check: 'retransform',
    table,
    file: staged.file,
    expected: `sha256 ${fresh.sha256} (what transform makes of the staged NDJSON)`,
    found: stagedSha !== null ? `sha256 ${stagedSha} (the staged file)` : 'no staged file to compare',
    detail: diff ? `first difference at line ${diff.line}: re-transformed ${JSON.stringify(clip(diff.fresh))}, staged ${JSON.stringify(clip(diff.staged))}` : undefined,
  };
}

/** csv / keys / rejects of the staged and the re-transformed table, paired by role. */
function fileSlots(before: TransformTableRecord, after: TransformTableRecord): [string, [FileRecord | null, FileRecord | null]][] {
  const roles = new Set<string>();
  for (const rec of [before, after]) {
    for (const [key, value] of Object.entries(rec)) if (isRecord(value)) roles.add(key);
  }
  return [...roles].map((role) => [role, [pick(before, role), pick(after, role)]]);
}

function pick(rec: TransformTableRecord, role: string): FileRecord | null {
  const v = (rec as unknown as Record<string, unknown>)[role];
  return isRecord(v) ? v : null;
}

function isRecord(v: unknown): v is FileRecord {
  return v !== null && typeof v === 'object' && typeof (v as FileRecord).file === 'string' && typeof (v as FileRecord).sha256 === 'string';
}

/** Every count the staged manifest gives for a table must come out the same. */
function compareFigures(table: string, before: TransformTableRecord, after: TransformTableRecord): Mismatch[] {
  const out: Mismatch[] = [];
  const b = before as unknown as Record<string, unknown>;
  const a = after as unknown as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    const bv = b[key];
    if (isRecord(bv) || typeof bv === 'string') continue;
    if (JSON.stringify(bv) !== JSON.stringify(a[key])) {
      out.push({ check: 'retransform', table, field: `stages.transform.tables.${table}.${key}`, expected: JSON.stringify(bv), found: `${JSON.stringify(a[key] ?? null)} (re-transformed)` });
    }
  }
  return out;
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    // Another filesystem (EXDEV) or no hard links: a copy is slower, not less true.
    await copyFile(from, to);
  }
}

async function firstDifference(a: string, b: string, signal?: AbortSignal): Promise<{ line: number; fresh: string | null; staged: string | null } | null> {
  const ra = createInterface({ input: createReadStream(a, { encoding: 'utf8', signal }), crlfDelay: Infinity });
  const rb = createInterface({ input: createReadStream(b, { encoding: 'utf8', signal }), crlfDelay: Infinity });
  const ia = ra[Symbol.asyncIterator]();
  const ib = rb[Symbol.asyncIterator]();
  try {
    for (let line = 1; ; line += 1) {
      const [x, y] = await Promise.all([ia.next(), ib.next()]);
      if (x.done && y.done) return null;
      const xs = x.done ? null : x.value;
      const ys = y.done ? null : y.value;
      if (xs !== ys) return { line, fresh: xs, staged: ys };
    }
  } finally {
    ra.close();
    rb.close();
  }
}

function clip(s: string | null): string | null {
  return s !== null && s.length > 160 ? `${s.slice(0, 160)}…` : s;
}
