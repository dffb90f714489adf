// What `etl verify` is pointed at: a run folder, or an archive made by `etl pack`. An archive is
// never unpacked as a whole. It is read as a stream, twice at most: first up to its manifest.json
// (the first entry in an archive made by `etl pack`), then every entry once, hashed as it is read.
// An entry is read only when the manifest records a file of exactly its size; only the files the
// re-transform needs (extract/, transform/, pipeline.yaml) and report.html (its figures are compared)
// are written, and only into the verify's own temporary folder. Anything else is reported (extra, stray, a link) and skipped unread.
import { createWriteStream } from 'node:fs';
import { readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StagingError } from '../errors/etl-error.ts';
import { checkedManifest, type FileRecord, type Manifest } from '../staging/manifest.ts';
import { StopWalk, walkArchive, type ArchiveEntry } from './archive-walk.ts';
import { CsvRowTap, FigureTap, stagedFileKind, type CsvRows, type TapFigures } from './file-figures.ts';
import { isSafeRelativePath, MANIFEST_FILE, PIPELINE_COPY, recordedFiles, REPORT_FILE } from './manifest-files.ts';
import { makeFolders } from '../staging/make-folders.ts';
import { MAX_REPORT_BYTES } from './report-figures.ts';

/** What reading one recorded file of an archive gave. */
export type ArchiveFileOutcome =
  /** `rows`: a CSV's rows, counted as it came out of the archive (null for other files). */
  | { readonly kind: 'read'; readonly figures: TapFigures; readonly rows: CsvRows | null }
  /** Its size differs from the manifest's: not read at all. */
  | { readonly kind: 'size'; readonly bytes: number };

export interface RunSource {
  /** The folder holding manifest.json (for an archive: the copy in the temporary folder). */
  readonly dir: string;
  /** The archive it came from, or null for a folder. */
  readonly archive: string | null;
  /** Archive entries that were not read (links, devices…), as named in the archive. */
  readonly skippedEntries: readonly string[];
  /** Archive entries outside the run folder (next to it), as named in the archive. */
  readonly strayEntries: readonly string[];
  /** Archive only: regular files of the run folder the manifest does not name (relative), duplicates included. */
  readonly extraFiles: readonly string[] | null;
  /** Archive only: what was read of each recorded file (by run-relative path). */
  readonly outcomes: ReadonlyMap<string, ArchiveFileOutcome> | null;
}

// manifest.json and pipeline.yaml are read whole; beyond these sizes an archive is not a run.
const MAX_MANIFEST_BYTES = 64 << 20;
const MAX_PIPELINE_BYTES = 8 << 20;
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/** `tempRoot`: a private folder of the caller's, removed by the caller; an archive's files go there. */
export async function openRunSource(target: string, tempRoot: string, signal?: AbortSignal): Promise<RunSource> {
  let info;
  try {
    info = await stat(target);
  } catch {
    throw new StagingError('no_run', `${target} does not exist`, { context: { file: target }, hint: 'pass a run folder (staging/<run-id>) or an archive made by `etl pack`' });
  }
  if (info.isDirectory()) {
    await requireManifest(target, target);
    return { dir: target, archive: null, skippedEntries: [], strayEntries: [], extraFiles: null, outcomes: null };
  }
  refusePartial(target);
  try {
    const found = await findManifest(target, signal);
    // The folder's name comes from the archive: used only when it is a plain name.
    const folder = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(found.prefix) ? found.prefix : 'run';
    const dir = path.join(tempRoot, 'archive', folder);
    await makeFolders(dir);
    await writeFile(path.join(dir, MANIFEST_FILE), found.text);
    const manifest = parseManifest(found.text, target);
    return { dir, archive: target, ...(await readEntries(target, found.prefix, manifest, dir, signal)) };
  } catch (error) {
    if (error instanceof StagingError || signal?.aborted) throw error;
    throw new StagingError('bad_archive', `${target} is not a readable run archive: ${(error as Error).message}`, {
      context: { file: target },
      hint: 'an archive made by `etl pack` is a .tar.gz holding one run folder',
      cause: error,
    });
  }
}

/**
 * `<file>.partial` is what `etl pack` (like every etl writer) writes before renaming: never an archive
 * to trust, even when it happens to read as one (cut short; a secret found later in it removes it).
 */
function refusePartial(target: string): void {
  if (!target.endsWith('.partial')) return;
  throw new StagingError('bad_archive', `${target} is an unfinished archive, not one to verify: what an etl pack was writing when it stopped (killed, or still running); it may be cut short and was not fully scanned for secrets`, {
    context: { file: target },
    hint: `verify the archive itself (${target.slice(0, -'.partial'.length)}) once \`etl pack\` has written it; a later \`etl pack\` to it removes a stale .partial`,
  });
}

/** An entry's name without a leading `./`. */
const entryName = (e: ArchiveEntry) => e.path.replace(/^(\.\/)+/, '');

/** The first `manifest.json` at the archive's root or one folder down: its folder and its text. */
async function findManifest(archive: string, signal?: AbortSignal): Promise<{ prefix: string; text: string }> {
  let found: { prefix: string; text: string } | null = null;
  await walkArchive(
    archive,
    async (entry) => {
      const m = /^(?:([^/]+)\/)?manifest\.json$/.exec(entryName(entry));
      if (!m || !FILE_TYPES.has(entry.type)) return void entry.resume();
      if (entry.size > MAX_MANIFEST_BYTES) {
        entry.resume();
        throw new StagingError('bad_archive', `${archive}: its ${entryName(entry)} has ${entry.size} bytes, more than a manifest can (${MAX_MANIFEST_BYTES})`, { context: { file: archive } });
      }
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      found = { prefix: m[1] ?? '', text: Buffer.concat(chunks).toString('utf8') };
      throw new StopWalk();
    },
    signal,
  );
  if (found === null) {
    throw new StagingError('bad_archive', `${archive} holds no run folder with a manifest.json`, {
      context: { file: archive },
      hint: 'an archive made by `etl pack` holds exactly one run folder',
    });
  }
  return found;
}

function parseManifest(text: string, archive: string): Manifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new StagingError('bad_manifest', `the manifest.json in ${archive} is not valid JSON`, { context: { file: archive }, cause });
  }
  return checkedManifest(parsed, `the manifest.json in ${archive}`, archive);
}

type EntryLists = Pick<RunSource, 'skippedEntries' | 'strayEntries' | 'extraFiles' | 'outcomes'>;

async function readEntries(archive: string, prefix: string, manifest: Manifest, dir: string, signal?: AbortSignal): Promise<EntryLists> {
  const records = new Map<string, FileRecord>();
  for (const { record } of recordedFiles(manifest)) if (isSafeRelativePath(record.file)) records.set(record.file, record);
  const skipped: string[] = [];
  const stray: string[] = [];
  const extra: string[] = [];
  const outcomes = new Map<string, ArchiveFileOutcome>();
  const seen = new Set<string>();
  await walkArchive(
    archive,
    async (entry) => {
      const name = entryName(entry);
      if (entry.type === 'Directory') return void entry.resume();
      if (!FILE_TYPES.has(entry.type)) return void (skipped.push(name), entry.resume());
      if (prefix && !name.startsWith(`${prefix}/`)) return void (stray.push(name), entry.resume());
      const rel = prefix ? name.slice(prefix.length + 1) : name;
      // A second entry of a name would replace the first on unpacking: neither is trusted.
      if (seen.has(rel)) return void (extra.push(`${rel} (a second entry of this name)`), entry.resume());
      seen.add(rel);
      if (rel === MANIFEST_FILE) return void entry.resume();
      // The HTML report (etl report) is derived from the manifest, not recorded in it: copied for
      // verify to compare its figures with the manifest's (report-figures.ts), within a report's size.
      if (rel === REPORT_FILE) {
        if (entry.size > MAX_REPORT_BYTES) return void (extra.push(`${rel} (${entry.size} bytes: too large to be one)`), entry.resume());
        return void (await copyEntry(entry, path.join(dir, rel)));
      }
      if (rel === PIPELINE_COPY) {
        if (entry.size > MAX_PIPELINE_BYTES) return void (extra.push(`${rel} (${entry.size} bytes: too large to be one)`), entry.resume());
        return void (await copyEntry(entry, path.join(dir, rel)));
      }
      const record = records.get(rel);
      if (!record) return void (extra.push(rel), entry.resume());
      // Capped by the manifest: an entry of another size is never read (nor inflated into memory or disk).
      if (entry.size !== record.bytes) return void (outcomes.set(rel, { kind: 'size', bytes: entry.size }), entry.resume());
      const onDisk = /^(extract|transform)\//.test(rel);
      const rows = onDisk && stagedFileKind(rel) === 'csv' ? new CsvRowTap() : null;
      outcomes.set(rel, { kind: 'read', figures: await copyEntry(entry, onDisk ? path.join(dir, rel) : null, rows), rows: rows?.rows() ?? null });
    },
    signal,
  );
  return { skippedEntries: skipped, strayEntries: stray, extraFiles: extra, outcomes };
}

/** Streams an entry through a hash tap (and a CSV row count) into `file` (or nowhere), with backpressure. */
async function copyEntry(entry: ArchiveEntry, file: string | null, rows: CsvRowTap | null = null): Promise<TapFigures> {
  const tap = new FigureTap();
  if (file) await makeFolders(path.dirname(file));
  const sink = file ? createWriteStream(file) : new Writable({ write: (_chunk, _enc, callback) => callback() });
  if (rows) await pipeline(entry, tap, rows, sink);
  else await pipeline(entry, tap, sink);
  return tap.figures();
}

async function requireManifest(dir: string, target: string): Promise<void> {
  if ((await readdir(dir)).includes(MANIFEST_FILE)) return;
  throw new StagingError('no_manifest', `${target} holds no ${MANIFEST_FILE}: not a staged run folder`, {
    context: { file: target },
    hint: 'pass a run folder (staging/<run-id>) or an archive made by `etl pack`',
  });
}
