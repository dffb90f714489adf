// A stage's start on a run, as one step: the check that no other process is at work on the run
// (refuseBusyRun, a load's re-checks) and the write of the stage's `running` section. The check
// reads the manifest and the mark writes it: two `etl transform` of one run started together both
// found it idle, both marked it running and wrote the same `.partial` files at once (one failed with
// `cannot write …csv: it does not exist`; with other --tables, a file could hold the other's bytes
// under a checksum of its own). The step holds `<staging>/<run>.starting`, made exclusively (the
// holder's pid and host in it) and removed when the step ends: held for the few milliseconds of a
// check and a write, so a process that finds it held refuses the run, as it would a moment later
// once the holder's section says `running`. One left by a process that died holding it (its pid
// gone from this host) is removed by the next start.
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

/** Runs `step` (a stage's check and its `running` section) holding the run's start lock. */
export async function whileStarting<T>(paths: RunPaths, stage: StageName, step: () => Promise<T>): Promise<T> {
  const lock = startLockFile(paths);
  await takeStartLock(lock, paths, stage);
  try {
    return await step();
  } finally {
    await rm(lock, { force: true });
  }
}

/** Removals of a dead holder's lock before giving up (each found another dead holder's: never in practice). */
const STALE_TRIES = 5;

async function takeStartLock(lock: string, paths: RunPaths, stage: StageName): Promise<void> {
  const mine = `${JSON.stringify(currentWriter())}\n`;
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
      throw busy(lock, paths, stage, holder);
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

function holderOf(text: string): StageWriter | null {
  try {
    const w = JSON.parse(text) as Partial<StageWriter> | null;
    return typeof w?.pid === 'number' && typeof w.host === 'string' ? { pid: w.pid, host: w.host } : null;
  } catch {
    return null;
  }
}

function busy(lock: string, paths: RunPaths, stage: StageName, holder: StageWriter | null): StagingError {
  const who = holder === null ? 'another etl process' : `another etl process (pid ${holder.pid} on ${holder.host})`;
  const stale = holder === null ? `if no etl command is working on the run, remove ${lock}` : `if process ${holder.pid} on ${holder.host} is not etl, remove ${lock}`;
  return new StagingError('stage_running', `${stage} of run ${paths.runId} cannot start: ${who} is starting a stage of it`, {
    context: { file: lock },
    hint: `wait for it to end (\`etl status\` shows the run), then run \`etl ${stage} --run ${paths.runId}\` again; ${stale}`,
  });
}
