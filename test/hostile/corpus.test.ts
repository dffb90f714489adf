// The bad-input corpus (issue 13): each kind of bad document, planted alone in the clean sample,
// goes through extract → transform → load on a real PostgreSQL and must end in exactly one of:
// rejected with a reason, converted per the type contract, or counted and reported. The run always
// finishes, and every row of the clean sample loads. Most kinds go through a mongodump folder
// written byte by byte (so Decimal128, Int64, invalid UTF-8 and raw BSON are covered); a few go
// through a live server (FerretDB). The README's type contract lists each outcome.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { runExtract, type ExtractReport } from '../../extract/index.ts';
import { runLoad } from '../../load/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { ident } from '../../schema/sql.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { runTransform } from '../../transform/index.ts';
import { useServers } from '../harness/index.ts';
import { FERRET_KINDS, KINDS, type Kind } from './corpus/kinds.ts';
import type { FinishedRun, RejectRecord } from './corpus/outcomes.ts';
import { CLEAN_ROWS, cleanSample, CORPUS_PIPELINE, OWNERS, oid, writeSampleDump, type Sample } from './corpus/sample.ts';

const servers = useServers();

type Source = 'dump' | 'ferretdb';

async function readLines<T>(file: string): Promise<T[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

async function insertIntoFerret(sample: Sample, t: TestContext): Promise<{ url: string; database: string }> {
  const { name, url } = await servers.mongo.newDatabase(t.name);
  const client = new MongoClient(url);
  await client.connect();
  try {
    for (const [collection, docs] of Object.entries(sample)) {
      const plain = docs.filter((d): d is Exclude<typeof d, Buffer> => !Buffer.isBuffer(d));
      assert.equal(plain.length, docs.length, 'raw BSON goes through the dump path only');
      if (plain.length) await client.db(name).collection(collection).insertMany(plain.map((d) => ({ ...d })));
    }
  } finally {
    await client.close();
  }
  return { url, database: name };
}

async function runKind(kind: Kind, source: Source, t: TestContext): Promise<void> {
  const cwd = await mkdtemp(path.join(os.tmpdir(), 'etl-corpus-'));
  t.after(() => rm(cwd, { recursive: true, force: true }));
  const pipelineFile = path.join(cwd, 'pipeline.yaml');
  await writeFile(pipelineFile, kind.pipeline ? kind.pipeline(CORPUS_PIPELINE) : CORPUS_PIPELINE);
  const stagingDir = path.join(cwd, 'staging');
  const sample = cleanSample();
  kind.plant(sample);
  const model = await loadPipeline(pipelineFile);

  // The run always finishes: each stage resolves.
  let extracted: ExtractReport;
  if (source === 'dump') {
    const dump = path.join(cwd, 'dump');
    await writeSampleDump(dump, sample);
    extracted = await runExtract({ model, stagingDir, source: { kind: 'dump', path: dump }, full: true });
  } else {
    const mongo = await insertIntoFerret(sample, t);
    extracted = await runExtract({ model, stagingDir, source: { kind: 'mongodb', mongo: { url: mongo.url, database: mongo.database } }, full: true });
  }
  await runTransform({ model, stagingDir, runId: extracted.run_id });
  const url = await servers.postgres.createDatabase(t.name);
  await runLoad({ model, stagingDir, runId: extracted.run_id, postgres: { connectionString: url, host: '', port: 0, database: '', user: '', password: null } });

  const paths = runPaths(stagingDir, extracted.run_id);
  const manifest = await readManifest(paths);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.after(() => client.end());
  const run: FinishedRun & { extractRejects(collection: string): Promise<Record<string, unknown>[]> } = {
    manifest,
    warnings: extracted.warnings,
    transformRejects: (table) => readLines<RejectRecord>(paths.transformRejects(table)),
    loadRejects: (table) => readLines<Record<string, unknown>>(paths.loadRejects(table)),
    extractRejects: (collection) => readLines<Record<string, unknown>>(path.join(paths.extractDir, `${collection}.rejects.ndjson`)),
    // `expression` is a column or an SQL expression of this test (trusted text); the key is quoted.
    values: async (table, expression, key, id) =>
      (await client.query(`SELECT (${expression})::text AS v FROM ${ident(table)} WHERE ${ident(key)}::text = $1`, [id])).rows.map((r: { v: string | null }) => r.v),
  };

  for (const stage of ['extract', 'transform', 'load'] as const) assert.equal(manifest.stages[stage]?.status, 'done', `${stage} finished`);
  // Every row of the clean sample loads, and the planted document adds what its outcome says.
  for (const [table, clean] of Object.entries(CLEAN_ROWS)) {
    const n = Number((await client.query(`SELECT count(*) AS n FROM ${ident(table)}`)).rows[0].n);
    assert.equal(n, clean + (kind.outcome.adds[table] ?? 0), `rows of ${table}`);
  }
  const cleanIds = [...OWNERS.map((o) => o._id.toHexString()), ...[10, 11, 12].map((n) => oid(n).toHexString())];
  const present = (await client.query(`SELECT id FROM owners UNION ALL SELECT id FROM things`)).rows.map((r: { id: string }) => r.id);
  for (const id of cleanIds) assert.ok(present.includes(id), `clean row ${id} loaded`);

  await kind.outcome.check(run);
}

describe('bad documents through a mongodump', () => {
  test('the corpus has at least 60 kinds, each with one outcome', () => {
    assert.ok(KINDS.length >= 60, `${KINDS.length} kinds`);
    assert.equal(new Set(KINDS.map((k) => k.name)).size, KINDS.length, 'names are unique');
    for (const kind of ['rejected', 'converted', 'counted']) assert.ok(KINDS.some((k) => k.outcome.kind === kind), kind);
  });
  for (const kind of KINDS) {
    test(`${kind.name} → ${kind.outcome.kind}`, { todo: kind.todo }, (t) => runKind(kind, 'dump', t));
  }
});

describe('bad documents through a live server (FerretDB)', () => {
  for (const name of FERRET_KINDS) {
    const kind = KINDS.find((k) => k.name === name)!;
    test(`${kind.name} → ${kind.outcome.kind}`, { todo: kind.todo }, (t) => runKind(kind, 'ferretdb', t));
  }
});
