// The staged-run builder of the transform tests: a run holding crafted extract files, as `etl extract`
// would leave it (manifest with a done extract section, `latest` pointing at it), written with the
// staging/ functions and the shared parts of test/harness/staged-run.ts.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import os from 'node:os';
import path from 'node:path';
import type { Document } from 'bson';
import type { PipelineModel } from '../../model/types.ts';
import { encodeDocument } from '../../staging/ndjson.ts';
import { updateManifest } from '../../staging/manifest.ts';
import type { ExtractCollectionRecord } from '../../staging/manifest-extract.ts';
import { createRun, type RunPaths } from '../../staging/run-folder.ts';
import { extractRecord, pipelineFromYaml, publishRun, runManifest } from '../harness/staged-run.ts';

/** Temp folders made by this module, removed by removeStagedRuns() (each test file's after hook). */
const made: string[] = [];

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export async function removeStagedRuns(): Promise<void> {
  // KEEP_TEST_DATA=1 keeps them to look at after a failure.
  if (process.env.KEEP_TEST_DATA === '1') return;
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
}

export const PIPELINE_FILE = new URL('../../pipeline.yaml', import.meta.url).pathname;

/** The project's pipeline.yaml, or a YAML text written to a temp file. */
export async function pipelineModel(yamlText?: string): Promise<PipelineModel> {
  if (yamlText === undefined) return pipelineFromYaml(await readFile(PIPELINE_FILE, 'utf8'), PIPELINE_FILE);
  // Written too: transform names the model's file in its messages, as it names the user's.
  const dir = await tempDir('etl-pipeline-');
  const file = path.join(dir, 'pipeline.yaml');
  await writeFile(file, yamlText);
  return pipelineFromYaml(yamlText, file);
}

/** A collection's documents: BSON values (encoded canonically) or NDJSON lines written verbatim. */
export type Extract = Readonly<Record<string, readonly (Document | string)[]>>;

/** The read window of every staged extract: a full read, one second long. */
const EXTRACT_WINDOW = {
  watermark: { from: null, next: '2024-01-01T00:00:00.000Z' },
  startedAt: '2024-01-01T00:00:00.000Z',
  endedAt: '2024-01-01T00:00:01.000Z',
} as const;

export interface StagedRun {
  readonly stagingDir: string;
  readonly paths: RunPaths;
}

export async function stageRun(model: PipelineModel, extract: Extract, o: { stagingDir?: string; extractStatus?: 'done' | 'running' | 'failed'; pipelineSha256?: string } = {}): Promise<StagedRun> {
  const stagingDir = o.stagingDir ?? (await tempDir('etl-staging-'));
  const paths = await createRun(stagingDir);
  const collections: Record<string, ExtractCollectionRecord> = {};
  for (const [collection, docs] of Object.entries(extract)) {
    const text = docs.map((d) => (typeof d === 'string' ? `${d}\n` : encodeDocument(d))).join('');
    await writeFile(paths.extractFile(collection), text);
    const file = { bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex'), records: docs.length };
    collections[collection] = extractRecord(paths, model, collection, { file, ...EXTRACT_WINDOW });
  }
  const manifest = runManifest(paths, o.pipelineSha256 ?? model.sha256, {
    extract: {
      status: o.extractStatus ?? 'done',
      started_at: EXTRACT_WINDOW.startedAt,
      ended_at: o.extractStatus === 'running' ? null : EXTRACT_WINDOW.endedAt,
      full: true,
      server_started_at: null,
      collections,
    },
  });
  await publishRun(stagingDir, paths, manifest);
  return { stagingDir, paths };
}

/**
 * A run holding the sample generator's database (sample/generate.ts) as extract files, written
 * streaming (a million documents never sit in memory), for the PostgreSQL test and the benchmark.
 */
export async function stageSampleRun(model: PipelineModel, o: { scale: number; seed?: number; stagingDir?: string }): Promise<StagedRun & { documents: number }> {
  const { generateSample } = await import('../../sample/generate.ts');
  const sample = generateSample({ scale: o.scale, seed: o.seed ?? 1 });
  const run = await stageRun(model, {}, { stagingDir: o.stagingDir });
  const collections: Record<string, ExtractCollectionRecord> = {};
  let documents = 0;
  for (const c of sample.collections) {
    const file = run.paths.extractFile(c.name);
    const hash = createHash('sha256');
    let bytes = 0;
    let records = 0;
    const out = createWriteStream(file);
    const lines = (function* () {
      for (const doc of c.documents()) {
        const line = encodeDocument(doc);
        hash.update(line);
        bytes += Buffer.byteLength(line);
        records += 1;
        yield line;
      }
    })();
    await pipeline(Readable.from(lines), out);
    documents += records;
    collections[c.name] = extractRecord(run.paths, model, c.name, { file: { bytes, sha256: hash.digest('hex'), records }, ...EXTRACT_WINDOW });
  }
  await updateManifest(run.paths, (m) => {
    m.stages.extract!.collections = collections;
  });
  return { ...run, documents };
}

export async function readText(file: string): Promise<string> {
  return readFile(file, 'utf8');
}
