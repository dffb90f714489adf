// What `etl verify` is pointed at: a run folder, or an archive made by `etl pack`. An archive is
// unpacked with `tar` into a private temporary folder (removed by close()), keeping only regular
// files and folders, so a crafted archive cannot plant links or write outside that folder.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { StagingError } from '../model/errors.ts';
import { MANIFEST_FILE } from './manifest-files.ts';

export interface RunSource {
  /** The folder holding manifest.json. */
  readonly dir: string;
  /** The archive it came from, or null for a folder. */
  readonly archive: string | null;
  /** Archive entries that were not unpacked (links, devices…), as named in the archive. */
  readonly skippedEntries: readonly string[];
  /** Archive entries outside the run folder (next to it), as named in the archive. */
  readonly strayEntries: readonly string[];
  close(): Promise<void>;
}

export async function openRunSource(target: string, signal?: AbortSignal): Promise<RunSource> {
  let info;
  try {
    info = await stat(target);
  } catch {
    throw new StagingError('no_run', `${target} does not exist`, { context: { file: target }, hint: 'pass a run folder (staging/<run-id>) or an archive made by `etl pack`' });
  }
  if (info.isDirectory()) {
    await requireManifest(target, target);
    return { dir: target, archive: null, skippedEntries: [], strayEntries: [], close: async () => {} };
  }
  const root = await mkdtemp(path.join(tmpdir(), 'etl-verify-archive-'));
  const close = () => rm(root, { recursive: true, force: true });
  try {
    const skipped: string[] = [];
    const entries: string[] = [];
    signal?.throwIfAborted();
    await tar.extract({
      file: target,
      cwd: root,
      strict: true,
      // Regular files and folders only; anything else is reported, never created.
      filter: (p, entry) => {
        const type = 'type' in entry ? entry.type : null;
        const keep = type === 'File' || type === 'OldFile' || type === 'ContiguousFile' || type === 'Directory';
        if (!keep) skipped.push(p);
        else if (type !== 'Directory') entries.push(p.replace(/^\.\//, ''));
        return keep;
      },
    });
    signal?.throwIfAborted();
    const dir = await findRunFolder(root, target);
    const prefix = path.relative(root, dir).split(path.sep).join('/');
    const stray = prefix === '' ? [] : entries.filter((e) => e !== prefix && !e.startsWith(`${prefix}/`));
    return { dir, archive: target, skippedEntries: skipped, strayEntries: stray, close };
  } catch (error) {
    await close();
    if (error instanceof StagingError) throw error;
    throw new StagingError('bad_archive', `${target} is not a readable run archive: ${(error as Error).message}`, {
      context: { file: target },
      hint: 'an archive made by `etl pack` is a .tar.gz holding one run folder',
      cause: error,
    });
  }
}

/** The run folder inside an unpacked archive: the archive's root or its one top-level folder. */
async function findRunFolder(root: string, archive: string): Promise<string> {
  if (await exists(path.join(root, MANIFEST_FILE))) return root;
  const dirs: string[] = [];
  for (const name of await readdir(root)) if ((await stat(path.join(root, name))).isDirectory()) dirs.push(name);
  const withManifest: string[] = [];
  for (const d of dirs) if (await exists(path.join(root, d, MANIFEST_FILE))) withManifest.push(d);
  if (withManifest.length !== 1) {
    throw new StagingError('bad_archive', `${archive} holds ${withManifest.length === 0 ? 'no' : withManifest.length} run folder${withManifest.length === 1 ? '' : 's'} with a manifest.json (expected one)`, {
      context: { file: archive },
      hint: 'an archive made by `etl pack` holds exactly one run folder',
    });
  }
  return path.join(root, withManifest[0]!);
}

async function requireManifest(dir: string, target: string): Promise<void> {
  if (await exists(path.join(dir, MANIFEST_FILE))) return;
  throw new StagingError('no_manifest', `${target} holds no ${MANIFEST_FILE}: not a staged run folder`, {
    context: { file: target },
    hint: 'pass a run folder (staging/<run-id>) or an archive made by `etl pack`',
  });
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
