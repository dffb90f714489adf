// A transform fed by a running extract (what `etl run` does, composed here as bin/commands/run.ts
// composes it), with a worker thread taking collections while the extract reads the next ones:
// its files are those of a transform run after the extract; a transform failure is recorded only
// once the extract is done; an extract failure leaves no transform file and no transform section.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, test } from 'node:test';
import { StagingError } from '../../errors/etl-error.ts';
import { runExtract, type ExtractReport } from '../../extract/index.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { CollectionFeed, runTransform, type TransformReport } from '../../transform/index.ts';
import type { PipelineModel } from '../../model/types.ts';
import { etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { pipelineModel } from './staged-run.ts';

let work = '';
let dump = '';
let model: PipelineModel;
before(async () => {
  work = await tempDir('etl-as-extracted-');
  dump = path.join(work, 'dump');
  const r = await etl(['sample', '--scale', '3000', '--out', dump, '--quiet'], { cwd: work });
  assert.equal(r.code, 0, r.stderr);
  model = await pipelineModel();
});

async function digests(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) out[name] = createHash('sha256').update(await readFile(path.join(dir, name))).digest('hex');
  return out;
}

interface Fed {
  readonly extract: Promise<ExtractReport>;
  readonly transform: Promise<TransformReport>;
  /** When each settled (ms, performance.now()). */
  readonly settled: { extract?: number; transform?: number };
  runId(): string;
}

/** Extract `source` with a transform fed as each collection is staged; `staged` runs before the transform hears of it. */
function extractFed(source: string, stagingDir: string, threads: number, staged?: (collection: string, runId: string) => void, extracted?: (runId: string) => Promise<void>): Fed {
  const fed: { feed?: CollectionFeed; transform?: Promise<TransformReport>; runId?: string } = {};
  const settled: Fed['settled'] = {};
  let resolveTransform!: (t: Promise<TransformReport>) => void;
  const transform = new Promise<TransformReport>((resolve) => (resolveTransform = resolve));
  const extract = runExtract({
    model,
    stagingDir,
    source: { kind: 'dump', path: source },
    full: true,
    withDone: (m) => fed.feed?.withDone(m),
    onProgress: (e) => {
      if (e.kind === 'started') {
        fed.runId = e.runId;
        fed.feed = new CollectionFeed(e.collections);
        resolveTransform(runTransform({ model, stagingDir, runId: e.runId, threads, extractFeed: fed.feed }));
      } else if (e.kind === 'collection_done') {
        staged?.(e.collection, fed.runId!);
        fed.feed!.push({ collection: e.collection, record: e.record });
      }
    },
  }).then(
    async (report) => {
      settled.extract = performance.now();
      await extracted?.(report.runId);
      fed.feed!.end();
      return report;
    },
    (error: unknown) => {
      settled.extract = performance.now();
      fed.feed?.fail(error);
      throw error;
    },
  );
  extract.catch(() => undefined);
  const transformSettled = transform.then((t) => t).finally(() => (settled.transform = performance.now()));
  transformSettled.catch(() => undefined);
  return { extract, transform: transformSettled, settled, runId: () => fed.runId! };
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

test('with a worker thread taking collections during the extract, every staged file and record is that of a transform after the extract', async () => {
  const staging = path.join(work, 'threads');
  const fed = extractFed(dump, staging, 2);
  const [extract, transform] = [await fed.extract, await fed.transform];
  assert.equal(transform.threads, 2, 'a worker thread shared the collections');
  const fedFiles = await digests(runPaths(staging, extract.runId).transformDir);
  const fedManifest = await readManifest(runPaths(staging, extract.runId));

  const after = await runTransform({ model, stagingDir: staging, runId: extract.runId, threads: 1 });
  const afterManifest = await readManifest(runPaths(staging, extract.runId));
  assert.ok(Object.keys(fedFiles).length >= 3 * model.tables.size);
  assert.deepEqual(fedFiles, await digests(runPaths(staging, extract.runId).transformDir));
  const { started_at: _a, ended_at: _b, ...fedSection } = fedManifest.stages.transform!;
  const { started_at: _c, ended_at: _d, ...afterSection } = afterManifest.stages.transform!;
  assert.deepEqual(fedSection, afterSection);
  assert.deepEqual(transform.tables, after.tables);
  assert.equal(transform.documentsRead, after.documentsRead);
});

test('a transform failure while the extract runs is recorded once the extract is done, over a done extract section', async () => {
  const staging = path.join(work, 'mismatch');
  // The ingredients file changes after the extract recorded it: its transform must refuse it.
  const fed = extractFed(dump, staging, 2, (collection, runId) => {
    if (collection === 'ingredients') appendFileSync(runPaths(staging, runId).extractFile(collection), '{"_id":"extra"}\n');
  });
  const error = await failure(fed.transform);
  assert.ok(error instanceof StagingError, `a StagingError, got ${String(error)}`);
  assert.equal(error.code, 'extract_mismatch');
  assert.equal(error.context.collection, 'ingredients');
  await fed.extract;
  assert.ok(fed.settled.transform! >= fed.settled.extract!, 'the transform failed only after the extract was done');
  const m = await readManifest(runPaths(staging, fed.runId()));
  assert.equal(m.stages.extract!.status, 'done');
  assert.equal(m.stages.transform!.status, 'failed');
  assert.equal(m.stages.transform!.error?.code, 'extract_mismatch');
});

test('an extract failing after some collections were transformed by a worker thread leaves no transform file and no transform section', async () => {
  const damaged = path.join(work, 'damaged');
  await cp(dump, damaged, { recursive: true });
  const file = path.join(damaged, 'wappizy', 'users.bson');
  const bytes = await readFile(file);
  bytes.writeInt32LE(-5, bytes.readInt32LE(0));
  await writeFile(file, bytes);
  const staging = path.join(work, 'damaged-staging');
  const fed = extractFed(damaged, staging, 2);
  const extractError = await failure(fed.extract);
  assert.equal((extractError as { code?: string }).code, 'dump_corrupt');
  assert.equal(await failure(fed.transform), extractError, "the transform stops with the extract's error");
  const paths = runPaths(staging, fed.runId());
  assert.deepEqual(await readdir(paths.transformDir), []);
  const m = await readManifest(paths);
  assert.deepEqual(Object.keys(m.stages), ['extract']);
  assert.equal(m.stages.extract!.status, 'failed');
  assert.ok(Object.keys(m.stages.extract!.collections).length >= 10, 'the collections before users were staged (and transformed)');
});

test("the extract's done write already holds the transform's running section: no moment leaves the transform's files without a running stage", async () => {
  const stagingDir = await tempDir('etl-as-extracted-gap-');
  let between: { extract?: string; transform?: string; writer?: number; partials: string[] } | null = null;
  const fed = extractFed(dump, stagingDir, 1, undefined, async (runId) => {
    // What a process killed right after the extract's last write leaves (the transform has not
    // heard that the extract ended, so it has written nothing since).
    const paths = runPaths(stagingDir, runId);
    const m = await readManifest(paths);
    const partials = (await readdir(paths.transformDir)).filter((n) => n.endsWith('.partial'));
    between = { extract: m.stages.extract?.status, transform: m.stages.transform?.status, writer: m.stages.transform?.writer?.pid, partials };
  });
  await fed.extract;
  const t = await fed.transform;
  assert.ok(between, 'the extract ended');
  const seen = between as { extract?: string; transform?: string; writer?: number; partials: string[] };
  assert.equal(seen.extract, 'done');
  assert.equal(seen.transform, 'running', `the transform's files (${seen.partials.length} unfinished) are owned by a running section`);
  assert.equal(seen.writer, process.pid);
  const m = await readManifest(runPaths(stagingDir, t.runId));
  assert.equal(m.stages.transform?.status, 'done');
  assert.equal(m.stages.transform?.writer, undefined, 'the done section names no writer');
});
