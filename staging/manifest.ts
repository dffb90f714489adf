// manifest.json: what a staged run holds, stage by stage. Each stage writes its section at start
// (status "running") and at the end ("done" or "failed"); the file is replaced atomically each time,
// so a reader sees the previous or the next version, never a torn one. A stage whose section is not
// "done" did not finish, and the next stage refuses it.
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { StagingError } from '../errors/etl-error.ts';
import { isPermissionDenied, systemWords } from '../errors/system-words.ts';
import { writeFileAtomic } from './atomic-file.ts';
import type { RunPaths } from './run-folder.ts';
import type { ExtractSection } from './manifest-extract.ts';
import type { TransformSection } from './manifest-transform.ts';
import type { LoadSection } from './manifest-load.ts';
import { killedHint, shownStatus, writerGone, type StageWriter } from './stage-writer.ts';

const MANIFEST_FORMAT = 1;
export type StageName = 'extract' | 'transform' | 'load';
/** The stages in the order they run. */
export const STAGES: readonly StageName[] = ['extract', 'transform', 'load'];

/** `extract done, transform killed, load not run`: a run's stages in one line (messages, summaries). */
export function describeStages(stages: Readonly<Partial<Record<StageName, string | null>>>): string {
  return STAGES.map((s) => `${s} ${stages[s] ?? 'not run'}`).join(', ');
}
/**
 * What a run refused before load: the documents extract could not stage and the rows transform
 * rejected, every collection and table of the run. `etl runs` and `etl report` add load's; load
 * records it in the ledger (`run_rejected_before_load`), so a run whose files were cleaned says it too.
 */
export function rejectedBeforeLoad(manifest: Manifest): number {
  const extract = Object.values(manifest.stages.extract?.collections ?? {}).map((c) => c.rejected ?? 0);
  const transform = Object.values(manifest.stages.transform?.tables ?? {}).map((t) => t.rejected ?? 0);
  return [...extract, ...transform].reduce((a, b) => a + b, 0);
}

export type StageStatus = 'running' | 'done' | 'failed';

/** Fields every stage section has. */
export interface StageSectionBase {
  status: StageStatus;
  started_at: string;
  ended_at: string | null;
  /** Why the stage failed (no secrets). */
  error?: { code: string; message: string } | null;
  /** While `running`: the process writing it (staging/stage-writer.ts); dropped when the stage ends. */
  writer?: StageWriter;
}

/** A staged file as the manifest records it. */
export interface FileRecord {
  /** Path relative to the run folder, with forward slashes. */
  file: string;
  bytes: number;
  sha256: string;
  /** NDJSON: documents; CSV: data rows (header excluded). */
  records: number;
}

export interface Manifest {
  format: number;
  run_id: string;
  tool_version: string;
  /** sha256 of the pipeline.yaml the run was extracted with (copied to <run>/pipeline.yaml). */
  pipeline_sha256: string;
  /** Where the documents came from, without credentials. */
  source: { kind: 'mongodb' | 'dump'; description: string };
  /** Where the rows went, without credentials (set by load). */
  destination: { description: string } | null;
  stages: {
    extract?: ExtractSection;
    transform?: TransformSection;
    load?: LoadSection;
  };
}

export async function readManifest(paths: RunPaths): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(paths.manifest, 'utf8');
  } catch (cause) {
    throw await unreadableManifest(paths, cause);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new StagingError('bad_manifest', `manifest of run ${paths.runId} is not valid JSON`, { context: { file: paths.manifest }, hint: DAMAGED_MANIFEST, cause });
  }
  return checkedManifest(parsed, `manifest of run ${paths.runId}`, paths.manifest);
}

/**
 * Why the manifest could not be read: the run's folder gone (removed while this command ran, after
 * it found the run: `etl clean`), no manifest in it, or a reason of the system's (a folder in its
 * place, permission denied).
 */
async function unreadableManifest(paths: RunPaths, cause: unknown): Promise<StagingError> {
  const code = (cause as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' && (await stat(paths.dir).catch(() => null)) === null) {
    return new StagingError('no_run', `staged run ${paths.runId} is gone from ${paths.stagingDir}: its folder was removed (by etl clean, or by hand)`, {
      context: { file: paths.dir },
      hint: 'list the runs there with `etl runs`, and name one with --run, or extract a new run',
      cause,
    });
  }
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new StagingError('no_manifest', `run ${paths.runId} has no manifest.json (${paths.manifest})`, {
      context: { file: paths.manifest },
      hint: 'the run was never started or its folder is damaged; run `etl extract` again',
      cause,
    });
  }
  return new StagingError('bad_manifest', `cannot read the manifest of run ${paths.runId} (${paths.manifest}): ${systemWords(cause)}`, {
    context: { file: paths.manifest },
    hint: isPermissionDenied(cause) ? `check that ${paths.manifest} is readable by this user` : DAMAGED_MANIFEST,
    cause,
  });
}

/** What to do about a manifest etl cannot trust: it is the run's record, so the run goes with it. */
const DAMAGED_MANIFEST = 'restore the run folder from a copy (or its `etl pack` archive), or extract a new run';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Each stage section's tables or collections: what every reader walks. */
const SECTION_MAPS: Readonly<Record<StageName, string>> = { extract: 'collections', transform: 'tables', load: 'tables' };

/**
 * Parsed JSON as a manifest, once its frame is what every reader relies on: an object of this
 * format, its run id, tool version, pipeline hash and source, and each stage section an object with a
 * known status and its map of collections or tables, each an object. A manifest edited by hand or damaged otherwise is refused here, naming what
 * is wrong, rather than failing in a reader as a bug of etl.
 */
export function checkedManifest(parsed: unknown, what: string, file: string): Manifest {
  const refuse = (problem: string): never => {
    throw new StagingError('bad_manifest', `${what} is not a manifest etl wrote: ${problem}`, {
      context: { file },
      hint: DAMAGED_MANIFEST,
    });
  };
  if (!isObject(parsed)) return refuse(`it holds ${Array.isArray(parsed) ? 'an array' : String(parsed === null ? 'null' : typeof parsed)}, not an object`);
  if (parsed.format !== MANIFEST_FORMAT) {
    throw new StagingError('bad_manifest', `${what} has format ${JSON.stringify(parsed.format)}; this etl reads format ${MANIFEST_FORMAT}`, {
      context: { file },
      hint: 'read it with the etl that wrote it (its tool_version), or extract a new run',
    });
  }
  for (const key of ['run_id', 'tool_version', 'pipeline_sha256'] as const) if (typeof parsed[key] !== 'string') refuse(`${key} is not a string`);
  if (!isObject(parsed.source) || typeof parsed.source.description !== 'string') refuse('source.description is not a string');
  if (!isObject(parsed.stages)) refuse('stages is not an object');
  const stages = parsed.stages as Record<string, unknown>;
  for (const stage of STAGES) {
    const section = stages[stage];
    if (section === undefined) continue;
    if (!isObject(section)) refuse(`stages.${stage} is not an object`);
    const { status } = section as Record<string, unknown>;
    if (status !== 'running' && status !== 'done' && status !== 'failed') refuse(`stages.${stage}.status is ${JSON.stringify(status)}, not running, done or failed`);
    const map = (section as Record<string, unknown>)[SECTION_MAPS[stage]];
    if (map === undefined) continue;
    if (!isObject(map)) return refuse(`stages.${stage}.${SECTION_MAPS[stage]} is not an object`);
    for (const [name, record] of Object.entries(map)) if (!isObject(record)) refuse(`stages.${stage}.${SECTION_MAPS[stage]}.${name} is not an object`);
  }
  return parsed as unknown as Manifest;
}

export async function writeManifest(paths: RunPaths, manifest: Manifest): Promise<void> {
  await writeFileAtomic(paths.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Read-modify-write of the manifest. Stages run one at a time on a run (refuseBusyRun), so this does not race. */
export async function updateManifest(paths: RunPaths, change: (m: Manifest) => void): Promise<Manifest> {
  const manifest = await readManifest(paths);
  change(manifest);
  await writeManifest(paths, manifest);
  return manifest;
}

/** Throws unless `stage` finished on this run: what the next stage checks before reading its files. */
export function requireStageDone(manifest: Manifest, stage: StageName, paths: RunPaths): void {
  const section = manifest.stages[stage];
  if (section?.status === 'done') return;
  if (shownStatus(section) === 'killed') {
    throw new StagingError('stage_not_done', `${stage} of run ${paths.runId} was killed (its process is gone): its files are not complete`, {
      context: { file: paths.manifest },
      hint: killedHint(stage, paths.runId),
    });
  }
  const state = section ? `is "${section.status}"${section.error ? ` (${section.error.message})` : ''}` : 'never ran';
  throw new StagingError('stage_not_done', `${stage} of run ${paths.runId} ${state}: its files are not complete`, {
    context: { file: paths.manifest },
    hint: unfinishedHint(stage, section?.status, paths.runId),
  });
}

/** What makes the run whole: the stage's command (extract makes a new run), or waiting for the one at work. */
function unfinishedHint(stage: StageName, status: string | undefined, runId: string): string {
  const command = stage === 'extract' ? 'etl extract' : `etl ${stage} --run ${runId}`;
  const next = stage === 'extract' ? 'transform' : 'load';
  if (status === undefined) return `run \`${command}\` first, then ${next} it`;
  if (status === 'running') return `the \`${command}\` at work on it has not ended: wait for it (etl status shows it), then run this again`;
  return `run \`${command}\` again to produce a complete run`;
}

/**
 * Throws when another process of this host is at work on the run in one of `stages` (its section
 * `running`, its writer alive): a transform started beside it would write the same `.partial` files
 * (their bytes interleave) or rewrite the files a load is reading. A writer on another host cannot be
 * checked and is not refused; this process (`etl run`: every stage at once) never is.
 */
export function refuseBusyRun(manifest: Manifest, paths: RunPaths, starting: StageName, stages: readonly StageName[]): void {
  for (const stage of stages) {
    const section = manifest.stages[stage];
    const writer = section?.writer;
    if (section?.status !== 'running' || !writer || writer.host !== hostname() || writer.pid === process.pid || writerGone(writer)) continue;
    throw new StagingError('stage_running', `${starting} of run ${paths.runId} cannot start: its ${stage} is running in another etl process (pid ${writer.pid}, since ${section.started_at})`, {
      context: { file: paths.manifest },
      hint: `wait for it to end (\`etl status\` shows the run), or stop that process; then run \`etl ${starting} --run ${paths.runId}\` again`,
    });
  }
}

// Kept in step with package.json by a test.
export const TOOL_VERSION = '0.1.0';
