// The seeded randomized proof that hostile values arriving through a live MongoDB (FerretDB) never
// abort a run, never make two documents silently become one, and never break the exact mirror. A
// generated sample, a full `etl run`, then rounds of hostile edits (test/hostile/values/): mapped
// fields, references and link arrays set to values of the wrong type, at and beyond the bounds of
// their column, NaN and infinities, NUL and control characters, strings CSV and COPY must escape,
// dates outside the calendar; documents inserted under `_id`s of every BSON type, some the twins of
// others in a text column (`5` and `"5"`, an ObjectId and its hex); such documents deleted; broken
// fields set back. After each round's `etl run --propagate-deletes` (every other round its three
// stages one after the other):
//   1. every command exits 0 and prints no stack (Mirror's runs; etl status, etl verify, and etl diff
//      --deep, which finds no difference in an exact mirror);
//   2. every table equals a fresh full run of MongoDB as it is (assertMirrors);
//   3. the transform's counts reconcile per table, in the incremental run and the full one, and every
//      reject line names collection, _id, table, column and reason (load: table, key, column, reason);
//   4. no two documents silently become one (identities.ts, on the full run's keys files and rows).
// Values FerretDB refuses to store are tallied and printed (covered through mongodump by the corpus).
//
// Replay or extend a seed:
//   HOSTILE_SEEDS=7 HOSTILE_ROUNDS=5 HOSTILE_EDITS=200 HOSTILE_SCALE=1000 \
//     node --import tsx --test --test-timeout=1800000 test/hostile/values-randomized.test.ts
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { etl, STACK_LINE } from '../harness/cli.ts';
import { useServers } from '../harness/index.ts';
import { EditGenerator, formatEdit, type Edit } from '../mirror/edits.ts';
import { assertMirrors, editsTouching, integers, Mirror, PIPELINE, transformMismatches, type TransformTable } from '../mirror/harness.ts';
import { HostileEditor } from './values/editor.ts';
import { mergedDocuments, unnamedRejects } from './values/identities.ts';

const servers = useServers();

const SEEDS = integers('HOSTILE_SEEDS', [1]);
const [ROUNDS] = integers('HOSTILE_ROUNDS', [3]) as [number];
const [EDITS] = integers('HOSTILE_EDITS', [60]) as [number];
const [SCALE] = integers('HOSTILE_SCALE', [300]) as [number];
/** Of a round's edits, the share made by the ordinary random edits (test/mirror/edits.ts): the data keeps moving around the hostile values. */
const ORDINARY_SHARE = 0.25;

interface Manifest {
  readonly stages: { readonly transform: { readonly tables: Readonly<Record<string, TransformTable>> } };
}

const readManifest = async (runDir: string): Promise<Manifest> => JSON.parse(await readFile(path.join(runDir, 'manifest.json'), 'utf8')) as Manifest;

function replay(seed: number): string {
  return `HOSTILE_SEEDS=${seed} HOSTILE_ROUNDS=${ROUNDS} HOSTILE_EDITS=${EDITS} HOSTILE_SCALE=${SCALE} node --import tsx --test --test-timeout=1800000 test/hostile/values-randomized.test.ts`;
}

/** A command on the incremental staging and database: exit 0, no stack. */
async function quietly(m: Mirror, args: readonly string[], what: string): Promise<void> {
  const r = await etl([...args], { env: m.incrementalEnv });
  assert.equal(r.code, 0, `${what} failed:\n${r.output}`);
  assert.doesNotMatch(r.stderr, STACK_LINE, `${what} printed a stack trace:\n${r.stderr}`);
}

/** What the checks met (the proof is not vacuous): rows transform rejected, keys two documents shared, documents no key holds. */
interface Tally {
  rejected: number;
  /** By the `_id`s' BSON types. */
  readonly shared: Map<string, number>;
  unkeyed: number;
}

/**
 * Round r's incremental run with --propagate-deletes: `etl run` (odd rounds), or `etl extract`,
 * `etl transform` and `etl load` one after the other (even rounds); returns the run's folder.
 */
async function incrementalRun(m: Mirror, round: number): Promise<string> {
  if (round % 2 === 1) return path.join(m.incrementalStaging, (await m.incremental(['--propagate-deletes'])).runId);
  await quietly(m, m.incrementalArgs('extract', ['--propagate-deletes']), 'etl extract --propagate-deletes');
  await quietly(m, m.incrementalArgs('transform'), 'etl transform');
  await quietly(m, m.incrementalArgs('load'), 'etl load');
  return path.join(m.incrementalStaging, (await readFile(path.join(m.incrementalStaging, 'latest'), 'utf8')).trim());
}

/** The properties 3 and 4 on one run folder (and, for the full run, its database); failures as text. */
async function runFailures(m: Mirror, runDir: string, label: string, full: { url: string } | null, seen: Tally): Promise<string[]> {
  const manifest = await readManifest(runDir);
  const tables = manifest.stages.transform.tables;
  const out = (await transformMismatches(runDir, tables)).map((x) => `${x.table}: ${x.figure}: expected ${x.expected}, reported ${x.reported}`);
  out.push(...(await unnamedRejects(m.model, runDir)));
  for (const t of Object.values(tables)) seen.rejected += t.rejected;
  if (full) {
    const merged = await mergedDocuments(m.model, await m.db(), runDir, full.url, (t) => tables[t]?.unkeyed ?? 0);
    out.push(...merged.failures);
    for (const [types, n] of merged.shared) seen.shared.set(types, (seen.shared.get(types) ?? 0) + n);
    seen.unkeyed += Object.values(tables).reduce((n, t) => n + t.unkeyed, 0);
  }
  return out.map((f) => `${label}: ${f}`);
}

for (const seed of SEEDS) {
  test(`seed ${seed}: ${ROUNDS} rounds of ${EDITS} hostile edits through a live server keep every run whole, every document distinct and the mirror exact`, async (t) => {
    const m = await Mirror.open(t, servers);
    await m.sample(SCALE, seed);
    const db = await m.db();
    const hostile = await HostileEditor.open(db, m.model, seed);
    const ordinary = await EditGenerator.open(db, seed);
    await m.incremental();
    const seen: Tally = { rejected: 0, shared: new Map(), unkeyed: 0 };
    const applied = (): Edit[] => [...hostile.applied, ...ordinary.applied].sort((a, b) => a.round - b.round);
    for (let round = 1; round <= ROUNDS; round++) {
      const plain = Math.round(EDITS * ORDINARY_SHARE);
      await ordinary.applyRound(plain);
      await hostile.applyRound(EDITS - plain);
      const runDir = await incrementalRun(m, round);
      await quietly(m, m.incrementalArgs('status', ['--json']), 'etl status --json');
      await quietly(m, ['verify', runDir], `etl verify ${runDir}`);
      // An exact mirror: etl diff --deep, which reads MongoDB through pipeline.yaml itself, finds nothing.
      await quietly(m, ['diff', '--deep', '--mongo-url', m.mongo.url, '--mongo-db', m.mongo.name, '--database-url', m.incrementalUrl, '--pipeline', PIPELINE], 'etl diff --deep');
      const reference = await m.referenceRun();
      const context = `seed ${seed}, round ${round}; replay: ${replay(seed)}`;
      await assertMirrors(m.model, m.incrementalUrl, reference.url, { context, annotate: (row) => editsTouching(applied(), row) });
      const failures = [...(await runFailures(m, runDir, 'incremental run', null, seen)), ...(await runFailures(m, reference.folder, 'full run', reference, seen))];
      if (failures.length > 0) {
        const edits = hostile.applied.filter((e) => e.round === round);
        assert.fail(`${context}\n${failures.slice(0, 40).join('\n')}\nthis round's hostile edits:\n${edits.map((e) => `  ${formatEdit(e)}`).join('\n')}`);
      }
    }
    // Not vacuous: values of the grammar were stored and read; say what FerretDB refused.
    const stored = [...hostile.stored.values()].reduce((a, b) => a + b, 0);
    assert.ok(stored >= ROUNDS * (EDITS - Math.round(EDITS * ORDINARY_SHARE)) * 0.5, `hostile values stored: ${stored}`);
    assert.ok(hostile.applied.some((e) => e.kind === 'hostile_insert'), 'documents were inserted under hostile _ids');
    const shared = [...seen.shared].map(([types, n]) => `${types} ${n}`).join(', ');
    assert.ok(seen.rejected > 0 && seen.shared.size > 0, `the checks met rejected rows (${seen.rejected}) and keys two documents share (${shared})`);
    t.diagnostic(`rows transform rejected ${seen.rejected}; keys two documents shared, by _id types, over the full runs: ${shared}; unkeyed documents ${seen.unkeyed}`);
    t.diagnostic(`hostile values stored: ${stored} (${hostile.stored.size} kinds)`);
    if (hostile.refused.size > 0) t.diagnostic(`refused by FerretDB: ${[...hostile.refused].map(([label, r]) => `${label} ×${r.count} (${r.message})`).join('; ')}`);
  });
}
