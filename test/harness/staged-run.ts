// What every staged-run builder of the tests writes the same way, so the builders (extract files:
// test/transform/staged-run.ts; transform files: test/load/staged-run.ts) differ only in the stage
// they stage: the model, resolved from pipeline.yaml text by the real resolver; the manifest's frame;
// the extract record of a collection; and the run's publication (manifest written, `latest` set).
import type { PipelineModel } from '../../model/types.ts';
import { resolvePipeline } from '../../model/load-pipeline.ts';
import { TOOL_VERSION, writeManifest, type Manifest } from '../../staging/manifest.ts';
import type { ExtractCollectionRecord } from '../../staging/manifest-extract.ts';
import { setLatest, type RunPaths } from '../../staging/run-folder.ts';

/**
 * The model of a pipeline.yaml text, resolved by the real loader (model/load-pipeline.ts): a test
 * describes its tables as a user would, so it stages and loads what the resolver really builds.
 * `file` names the text in the findings of a pipeline the resolver refuses, and is the model's file.
 */
export function pipelineFromYaml(yaml: string, file = 'test pipeline (inline YAML)'): PipelineModel {
  return resolvePipeline(Buffer.from(yaml), file);
}

/** The manifest of a run a test stages (a dump as its source, no destination yet). */
export function runManifest(paths: RunPaths, pipelineSha256: string, stages: Manifest['stages']): Manifest {
  return {
    format: 1,
    run_id: paths.runId,
    tool_version: TOOL_VERSION,
    pipeline_sha256: pipelineSha256,
    source: { kind: 'dump', description: 'test fixture' },
    destination: null,
    stages,
  };
}

export interface StagedCollection {
  /** The extract file as staged (bytes 0 and no sha256 when the test stages no extract file). */
  readonly file: { readonly bytes: number; readonly sha256: string; readonly records: number };
  readonly watermark: { from: string | null; next: string };
  readonly startedAt: string;
  readonly endedAt: string;
}

/** The extract record of one collection of the model (its tables from the model). */
export function extractRecord(paths: RunPaths, model: PipelineModel, collection: string, s: StagedCollection): ExtractCollectionRecord {
  return {
    file: paths.relative(paths.extractFile(collection)),
    bytes: s.file.bytes,
    sha256: s.file.sha256,
    records: s.file.records,
    documents: s.file.records,
    filter: {},
    watermark: s.watermark,
    started_at: s.startedAt,
    ended_at: s.endedAt,
    tables: [...(model.collections.find((c) => c.name === collection)?.tables ?? [])],
  };
}

/** Writes the run's manifest and points `latest` at the run, as a finished stage leaves it. */
export async function publishRun(stagingDir: string, paths: RunPaths, manifest: Manifest): Promise<void> {
  await writeManifest(paths, manifest);
  await setLatest(stagingDir, paths.runId);
}
