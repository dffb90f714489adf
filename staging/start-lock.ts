// A stage's start on a run, as one step: the check that no other process is at work on the run
// (refuseBusyRun, a load's re-checks) and the write of the stage's `running` section. The check
// reads the manifest and the mark writes it: two `etl transform` of one run started together both
// found it idle, both marked it running and wrote the same `.partial` files at once (one failed with
// `cannot write …csv: it does not exist`; with other --tables, a file could hold the other's bytes
// under a checksum of its own). The step holds `<staging>/<run>.starting`, made exclusively (the
// holder's pid and host in it) and removed when the step ends: held for the few milliseconds of a
// check and a write, so a process that finds it held refuses the run, as it would a moment later
// once the holder's section says `running`. `etl clean` holds it too while it checks a run once more
// and removes it: no stage starts on a run being removed, nor is a run removed while one starts. One
// left by a process that died holding it (its pid gone from this host) is removed by the next start.
import { link, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StagingError } from '../errors/etl-error.ts';
import { writeFailure } from './atomic-file.ts';
import type { StageName } from './manifest.ts';
import type { RunPaths } from './run-folder.ts';
import { currentWriter, writerGone, type StageWriter } from './stage-writer.ts';

/** The start lock of a run: beside its folder, so that no file appears in the run (pack takes every file of it). */
export function startLockFile(paths: RunPaths): string {
  return path.join(paths.stagingDir, `${paths.runId}.starting`);
}

/** What the holder of a start lock does: starts a stage of the run, or removes the run (`etl clean`). */
export type StartingWork = Exclude<StageName, 'extract'> | 'clean';

/** The process holding a run's start lock, and what it does. */
export interface StartLockHolder extends StageWriter {
  readonly doing: StartingWork | null;
}

/** Runs `step` (a stage's check and its `running` section, or clean's check and removal) holding the run's start lock. */
export async function whileStarting<T>(paths: RunPaths, doing: StartingWork, step: () => Promise<T>): Promise<T> {
  const lock = startLockFile(paths);
  await takeStartLock(lock, paths, doing);
  try {
    return await step();
  } finally {
    await rm(lock, { force: true });
  }
}

/** Removals of a dead holder's lock before giving up (each found another dead holder's: never in practice). */
const STALE_TRIES = 5;

async function takeStartLock(lock: string, paths: RunPaths, doing: StartingWork): Promise<void> {
  const mine = `${JSON.stringify({ ...currentWriter(), doing })}\n`;
  // Written whole beside the lock, then linked into place (fails when it exists): a process killed
  // while it writes the lock leaves no empty one that nobody could tell the holder of.
  const own = `${lock}.${process.pid}.partial`;
  await writeFile(own, mine).catch((e: unknown) => Promise.reject(writeFailure(lock, e)));
  try {
    for (let tries = 0; ; tries += 1) {
      if (await placed(own, lock, mine)) return;
      const held = await readFile(lock, 'utf8').catch(() => null);
      if (held === null) continue; // released meanwhile
      const holder = holderOf(held);
      if (holder !== null && writerGone(holder) && tries < STALE_TRIES) {
        // Only the dead holder's lock: another process may have replaced it since it was read.
        if ((await readFile(lock, 'utf8').catch(() => null)) === held) await unlink(lock).catch(() => undefined);
        continue;
      }
      throw busy(lock, paths, doing, holder);
    }
  } finally {
    await rm(own, { force: true });
  }
}

/** True when `lock` now holds this process's `own` file; false when another lock stands there. */
async function placed(own: string, lock: string, mine: string): Promise<boolean> {
  try {
    await link(own, lock);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // A file system without hard links: made exclusively, written at once.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw writeFailure(lock, error);
  }
  try {
    await writeFile(lock, mine, { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw writeFailure(lock, error);
  }
}

/** The process holding the run's start lock (null: none, or not one etl wrote). */
export async function startLockHolder(paths: RunPaths): Promise<StartLockHolder | null> {
  const text = await readFile(startLockFile(paths), 'utf8').catch(() => null);
  return text === null ? null : holderOf(text);
}

function holderOf(text: string): StartLockHolder | null {
  try {
    const w = JSON.parse(text) as Partial<StartLockHolder> | null;
    if (typeof w?.pid !== 'number' || typeof w.host !== 'string') return null;
    const doing = w.doing === 'transform' || w.doing === 'load' || w.doing === 'clean' ? w.doing : null;
    return { pid: w.pid, host: w.host, doing };
  } catch {
    return null;
  }
}

/** What the holder does, in words: `is starting its load`, `is removing it (etl clean)`. */
export function holderWork(holder: StartLockHolder | null): string {
  const who = holder === null ? 'another etl process' : `another etl process (pid ${holder.pid} on ${holder.host})`;
  if (holder?.doing === 'clean') return `${who} is removing it (etl clean)`;
  return `${who} is starting ${holder?.doing ? `its ${holder.doing}` : 'a stage of it'}`;
}

function busy(lock: string, paths: RunPaths, doing: StartingWork, holder: StartLockHolder | null): StagingError {
  const stale = holder === null ? `if no etl command is working on the run, remove ${lock}` : `if process ${holder.pid} on ${holder.host} is not etl, remove ${lock}`;
  const again = doing === 'clean' ? 'etl clean' : `etl ${doing} --run ${paths.runId}`;
  return new StagingError('stage_running', `${doing === 'clean' ? 'etl clean' : doing} of run ${paths.runId} cannot start: ${holderWork(holder)}`, {
    context: { file: lock },
    hint: `wait for it to end (\`etl status\` shows the run), then run \`${again}\` again; ${stale}`,
  });
}
