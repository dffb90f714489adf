// Which process is writing a stage of a run, and how a stage is shown once that process is gone.
//
// While a stage runs, its manifest section names its writer (`writer`: pid and host); the section
// drops it when the stage ends, done or failed. A stage still `running` whose writer is certainly
// gone was killed (SIGKILL, the OOM killer, a power cut): etl shows it as `killed` (status, runs,
// report, verify, pack, clean, a stage refusing the run), derived each time it is read: a read-only
// command never rewrites the manifest. What the killed run left is swept by staging/run-writer.ts.
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import type { RunPaths } from './run-folder.ts';
import { STAGES, type Manifest, type StageName, type StageSectionBase, type StageStatus } from './manifest.ts';

export interface StageWriter {
  readonly pid: number;
  readonly host: string;
}

/** This process, as a running section records it. */
export function currentWriter(): StageWriter {
  return { pid: process.pid, host: os.hostname() };
}

/**
 * The writer as this host sees it: another process of this host alive (`alive`: EPERM is a process
 * of another user holding the pid), certainly gone (`gone`: no process has its pid), or `unknown`
 * (another host, no writer recorded, or this very process).
 */
function writerState(writer: StageWriter | undefined): 'alive' | 'gone' | 'unknown' {
  if (!writer || writer.host !== os.hostname() || writer.pid === process.pid) return 'unknown';
  try {
    process.kill(writer.pid, 0);
    return 'alive';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ESRCH' ? 'gone' : code === 'EPERM' ? 'alive' : 'unknown';
  }
}

/** True only when certain: the writer ran on this host and no process has its pid. */
export function writerGone(writer: StageWriter | undefined): boolean {
  return writerState(writer) === 'gone';
}

/**
 * True only when certain: the writer is another process of this host, and it is alive. A stage whose
 * writer is at work is in use, however long ago its manifest was written (one collection may take hours).
 */
export function writerAtWork(writer: StageWriter | undefined): writer is StageWriter {
  return writerState(writer) === 'alive';
}

/** The first of `stages` marked running whose writer is a live process of this host (writerAtWork): it is in use. */
export function stageAtWork(manifest: Manifest | null | undefined, stages: readonly StageName[] = STAGES): { stage: StageName; pid: number; startedAt: string } | null {
  for (const stage of stages) {
    const section = manifest?.stages[stage];
    if (section?.status === 'running' && writerAtWork(section.writer)) return { stage, pid: section.writer.pid, startedAt: section.started_at };
  }
  return null;
}

/** A section as it is recorded once its stage has ended: without its writer. */
export function withoutWriter<T extends { writer?: StageWriter }>(section: T): Omit<T, 'writer'> {
  const { writer: _writer, ...rest } = section;
  return rest;
}

/**
 * A stage's status as etl shows it: `killed` when its section says `running` but its writer is
 * certainly gone (writerGone). Derived when read, never written: the manifest keeps `running` until
 * a stage command recovers the run. A writer alive, on another host or not recorded stays `running`.
 */
export type ShownStageStatus = StageStatus | 'killed';

export function shownStatus(section: Pick<StageSectionBase, 'status' | 'writer'> | undefined): ShownStageStatus | null {
  if (!section) return null;
  return section.status === 'running' && writerGone(section.writer) ? 'killed' : (section.status ?? null);
}

/** Every stage of a run as shown (null: never ran, or no readable manifest). */
export function shownStages(manifest: Manifest | null | undefined): Record<StageName, ShownStageStatus | null> {
  const s = manifest?.stages;
  return { extract: shownStatus(s?.extract), transform: shownStatus(s?.transform), load: shownStatus(s?.load) };
}

/** The folder each stage writes its files in (the extract's is never unrecorded: its section comes first). */
const STAGE_FOLDERS: Readonly<Record<Exclude<StageName, 'extract'>, (paths: RunPaths) => string>> = {
  transform: (paths) => paths.transformDir,
  load: (paths) => paths.loadDir,
};

/**
 * Every stage of a run as shown, from its manifest and its folder: `etl run` works on the three
 * stages at once but records the transform's section only once the extract is done, and the load's
 * once the transform is. When the run's process died (a recorded stage is `killed`), a stage with
 * no section whose folder holds files had started and never ended: shown `killed` too, not as a
 * stage that never ran. Listing a folder, never writing: a view, as `killed` is.
 */
export async function shownStagesOfRun(paths: RunPaths, manifest: Manifest | null | undefined): Promise<Record<StageName, ShownStageStatus | null>> {
  const stages = shownStages(manifest);
  if (!manifest || killedStage(stages) === null) return stages;
  for (const stage of ['transform', 'load'] as const) {
    if (stages[stage] === null && (await holdsFiles(STAGE_FOLDERS[stage](paths)))) stages[stage] = 'killed';
  }
  return stages;
}

/** Whether a stage's folder holds a file (finished or `*.partial`); a missing folder holds none. */
async function holdsFiles(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.some((e) => e.isFile());
}

/** A stage shown `killed` that its manifest does not record at all (shownStagesOfRun): started, never ended. */
export function killedUnrecorded(manifest: Manifest | null | undefined, stage: StageName, shown: ShownStageStatus | null): boolean {
  return shown === 'killed' && manifest?.stages[stage] === undefined;
}

/** The stage a run's process died in, when certain; null otherwise. */
export function killedStage(stages: Readonly<Record<StageName, ShownStageStatus | null>>): StageName | null {
  return (Object.keys(stages) as StageName[]).find((s) => stages[s] === 'killed') ?? null;
}

/** A stage whose section says `failed`: the error it recorded (redacted when recorded: failureRecord). */
export interface StageFailure {
  readonly stage: StageName;
  readonly code: string;
  readonly message: string;
  /** What to do: fix what the error names, then run the stage again (or, for extract, make a new run). */
  readonly hint: string;
}

/** The stages of a run that failed, with the error each recorded and what to do (runs, report). */
export function failedStages(m: Manifest | null, runId: string): StageFailure[] {
  return STAGES.flatMap((stage) => {
    const s = m?.stages?.[stage];
    if (s?.status !== 'failed') return [];
    const again = stage === 'extract' ? 'make a new run with `etl extract`' : `run \`etl ${stage} --run ${runId}\` again`;
    return [{ stage, code: s.error?.code ?? 'unknown', message: s.error?.message ?? 'no error recorded', hint: `fix what the error names, then ${again}` }];
  });
}

/** What recovers a run killed in `stage`, and what `etl clean` does with it (status, runs, report). */
export function killedHint(stage: StageName, runId: string): string {
  const gone = `its ${stage} was killed (its process is gone)`;
  if (stage === 'extract') return `${gone}: the next \`etl run\`/\`etl extract\` reads its documents again and removes its unfinished files; \`etl clean\` removes it once a newer run is loaded`;
  if (stage === 'transform') return `${gone}: \`etl transform --run ${runId}\` redoes it (or the next \`etl run\` reads its documents again); \`etl clean\` removes it once a newer run is loaded`;
  return `${gone}: \`etl load --run ${runId}\` loads it (the next load into its database settles what it committed, from the ledger); \`etl clean\` keeps it until then`;
}
