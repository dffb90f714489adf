// A live extract reads two collections at once (extract/collection-pool.ts), yet stages what a read
// of one collection after the other stages: the same files, byte for byte, the same manifest (its
// collections in pipeline order), and on a failure the same error and the same leftovers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Document } from 'bson';
import { MongoClient } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { EtlError } from '../../errors/etl-error.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract, type ExtractOptions, type ExtractProgressEvent } from '../../extract/index.ts';
import { makeEvents, makeRecipes, makeUsers } from './dump-writer.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, 'fixtures/pipeline.yaml');
const servers = useServers();

/** The fixture pipeline reads events, users, recipes, ghosts (missing), in that order. */
async function source(testName: string, data: Record<string, Document[]>): Promise<ExtractOptions['source']> {
  const mongo = await servers.mongo.newDatabase(testName);
  const client = new MongoClient(mongo.url);
  try {
    await client.connect();
    for (const [name, docs] of Object.entries(data)) await client.db(mongo.name).collection(name).insertMany(docs);
  } finally {
    await client.close();
  }
  return { kind: 'mongodb', mongo: { url: mongo.url, database: mongo.name } };
}

interface Outcome {
  readonly error: unknown;
  readonly files: Record<string, string>;
  readonly manifest: Record<string, unknown>;
  readonly events: ExtractProgressEvent[];
}

/** One extract into its own staging folder: its error (if any), the sha256 of each file, the manifest's extract section. */
async function extract(t: { after(fn: () => unknown): void }, src: ExtractOptions['source'], extra: Partial<ExtractOptions>, inject?: (e: ExtractProgressEvent, seen: readonly ExtractProgressEvent[]) => void): Promise<Outcome> {
  const stagingDir = await tempDir('etl-concurrent-', t);
  const events: ExtractProgressEvent[] = [];
  let error: unknown = null;
  try {
    await runExtract({
      model: await loadPipeline(PIPELINE),
      stagingDir,
      source: src,
      full: true,
      progressEveryMs: 0,
      ...extra,
      onProgress: (e) => {
        events.push(e);
        inject?.(e, events);
      },
    });
  } catch (e) {
    error = e;
  }
  const runs = (await readdir(stagingDir)).filter((n) => n !== 'latest');
  assert.equal(runs.length, 1);
  const runDir = path.join(stagingDir, runs[0]!);
  const files: Record<string, string> = {};
  for (const name of (await readdir(path.join(runDir, 'extract'))).sort()) {
    files[name] = createHash('sha256').update(await readFile(path.join(runDir, 'extract', name))).digest('hex');
  }
  const manifest = JSON.parse(await readFile(path.join(runDir, 'manifest.json'), 'utf8')) as { stages: { extract: Record<string, unknown> } };
  return { error, files, manifest: manifest.stages.extract, events };
}

/** The section without what differs between two reads of the same data: times, durations, the clock-based watermark. */
function withoutTimes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutTimes);
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) {
    if (['started_at', 'ended_at', 'server_started_at', 'seconds'].includes(k)) continue;
    if (k === 'next' && record.next_basis === 'server_clock') continue;
    out[k] = withoutTimes(v);
  }
  return out;
}

/** The section as JSON text: key order matters (the collections stay in pipeline order). */
const sectionText = (o: Outcome) => JSON.stringify(withoutTimes(o.manifest));

/** True when `b` started before `a` was done: the two collections were read at the same time. */
function overlapped(o: Outcome, a: string, b: string): boolean {
  const started = o.events.findIndex((e) => e.kind === 'collection_started' && e.collection === b);
  const done = o.events.findIndex((e) => e.kind === 'collection_done' && e.collection === a);
  return started >= 0 && done >= 0 && started < done;
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

test('two or three collections at once stage the files and manifest of one at a time, byte for byte', async (t) => {
  // events first and large, users after it and small: users ends first, yet is recorded second.
  const src = await source(t.name, { events: makeEvents(1500), users: makeUsers(40), recipes: makeRecipes(12) });
  const one = await extract(t, src, { collectionsAtOnce: 1 });
  assert.equal(one.error, null);
  assert.ok(!overlapped(one, 'events', 'users'), 'one at a time');
  for (const extra of [{}, { collectionsAtOnce: 2 }, { collectionsAtOnce: 3 }]) {
    const many = await extract(t, src, extra);
    assert.equal(many.error, null);
    assert.ok(overlapped(many, 'events', 'users'), `users read while events was (${JSON.stringify(extra)})`);
    assert.deepEqual(many.files, one.files, 'the same files, byte for byte');
    assert.equal(sectionText(many), sectionText(one), 'the same extract section, collections in pipeline order');
  }
  assert.deepEqual(Object.keys(one.manifest.collections as object), ['events', 'users', 'recipes', 'ghosts']);
});

test('a collection failing while the one before it is read: that one completes, the error and the leftovers are those of one at a time', async (t) => {
  const src = await source(t.name, { events: makeEvents(5), users: makeUsers(1500), recipes: makeRecipes(600) });
  const failRecipes = (e: ExtractProgressEvent) => {
    if (e.kind === 'collection_progress' && e.collection === 'recipes' && e.documents > 0) throw new Error('recipes: injected failure');
  };
  const one = await extract(t, src, { collectionsAtOnce: 1 }, failRecipes);
  const two = await extract(t, src, { collectionsAtOnce: 2 }, failRecipes);
  assert.ok(overlapped(two, 'users', 'recipes'), 'recipes failed while users was read');
  assert.equal(message(two.error), 'recipes: injected failure');
  assert.equal(message(two.error), message(one.error));
  assert.deepEqual(Object.keys(two.files), ['events.ndjson', 'users.ndjson'], 'the collections before the failing one, nothing of it or after it');
  assert.deepEqual(two.files, one.files);
  assert.equal((two.manifest as { status: string }).status, 'failed');
  assert.equal(sectionText(two), sectionText(one));
});

test('a collection failing after the one behind it completed: that one is discarded, the leftovers are those of one at a time', async (t) => {
  const src = await source(t.name, { events: makeEvents(5), users: makeUsers(1500), recipes: makeRecipes(12) });
  const failUsers = (e: ExtractProgressEvent) => {
    if (e.kind === 'collection_progress' && e.collection === 'users' && e.documents >= 1000) throw new Error('users: injected failure');
  };
  const one = await extract(t, src, { collectionsAtOnce: 1 }, failUsers);
  const two = await extract(t, src, { collectionsAtOnce: 2 }, failUsers);
  const recipesDone = two.events.findIndex((e) => e.kind === 'collection_done' && e.collection === 'recipes');
  const usersFailed = two.events.findIndex((e) => e.kind === 'collection_progress' && e.collection === 'users' && e.documents >= 1000);
  assert.ok(recipesDone >= 0 && recipesDone < usersFailed, 'recipes was complete before users failed');
  assert.equal(message(two.error), 'users: injected failure');
  assert.equal(message(two.error), message(one.error));
  assert.deepEqual(Object.keys(two.files), ['events.ndjson']);
  assert.deepEqual(two.files, one.files);
  assert.equal(sectionText(two), sectionText(one));
});

test('an interruption stops both collections: no partial file of either, the manifest says interrupted', async (t) => {
  const src = await source(t.name, { events: makeEvents(1500), users: makeUsers(1500) });
  const controller = new AbortController();
  const interrupted = new Error('interrupted by the test');
  let doneBeforeAbort = -1;
  const outcome = await extract(t, src, { collectionsAtOnce: 2, signal: controller.signal }, (e, seen) => {
    const reading = (c: string) => seen.some((s) => s.kind === 'collection_progress' && s.collection === c && s.documents > 0);
    if (controller.signal.aborted || e.kind !== 'collection_progress' || !reading('events') || !reading('users')) return;
    doneBeforeAbort = seen.filter((s) => s.kind === 'collection_done').length;
    controller.abort(interrupted);
  });
  assert.ok(controller.signal.aborted, 'both collections were being read');
  // A collection whose last batch was already in flight may still report itself done after the abort
  // (both run at once): what the test holds is that neither was done when it came, and nothing stays.
  assert.equal(doneBeforeAbort, 0, 'neither collection was complete when the interruption came');
  assert.ok(outcome.error instanceof EtlError && outcome.error.code === 'interrupted', `${message(outcome.error)} (${String((outcome.error as Error).cause)})`);
  assert.deepEqual(outcome.files, {});
  const section = outcome.manifest as { status: string; collections: object; error: { code: string } };
  assert.equal(section.status, 'failed');
  assert.equal(section.error.code, 'interrupted');
  assert.deepEqual(Object.keys(section.collections), []);
});
