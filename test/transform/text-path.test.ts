// The oracle of the transform's text path: rows built straight from an NDJSON line's text must be
// the rows JSON.parse and the converters build. For each seed, an extract of realistic and hostile
// lines (text-path-lines.ts) is staged twice and transformed with `textPath: false` (every line
// parsed: the oracle) and `textPath: true`; every file under transform/ must have the same bytes and
// the manifest's transform records must be equal. Run with the project's pipeline.yaml and with an
// edited one (short VARCHARs, a NOT NULL column, NUMERIC and JSONB columns, a dotted path, filters
// with $in and $exists, nul_character: strip, another time zone). Seeds alternate one and two threads.
// A line JSON.parse refuses must fail both paths with the same error.
//
// Replay or widen:
//   TEXTPATH_SEEDS=3,4,5 TEXTPATH_DOCS=2000 node --import tsx --test --test-timeout=600000 test/transform/text-path.test.ts
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { EtlError } from '../../errors/etl-error.ts';
import type { PipelineModel } from '../../model/types.ts';
import { readManifest, updateManifest } from '../../staging/manifest.ts';
import { runTransform, type TransformOptions, type TransformReport } from '../../transform/index.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { BAD_LINES, generateExtract } from './text-path-lines.ts';
import { PIPELINE_FILE, pipelineModel, removeStagedRuns, stageRun, type StagedRun } from './staged-run.ts';

after(removeStagedRuns);

function integersFromEnv(name: string, fallback: readonly number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return [...fallback];
  return raw.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected comma-separated integers ≥ 0, got ${JSON.stringify(raw)}`);
    return n;
  });
}

const SEEDS = integersFromEnv('TEXTPATH_SEEDS', [1, 2]);
const [DOCS] = integersFromEnv('TEXTPATH_DOCS', [500]) as [number];

const replay = (seed: number): string => `TEXTPATH_SEEDS=${seed} TEXTPATH_DOCS=${DOCS} node --import tsx --test test/transform/text-path.test.ts`;

/** Threads alternate between seeds: the text path must agree whether a worker thread reads a collection or not. */
const threadsFor = (seed: number): number => (seed % 2 === 1 ? 1 : 2);

// ── staging and running ────────────────────────────────────────────────────────────────────────

/** Lines the transform counts: not empty once one CR before the newline is dropped (transform/ndjson-batches.ts). */
function recordsIn(bytes: Buffer): number {
  return bytes
    .toString('latin1')
    .split('\n')
    .filter((l) => l !== '' && l !== '\r').length;
}

/**
 * A run holding the given extract files byte for byte (stageRun writes text; a file here may hold bytes
 * that are not UTF-8): staged empty, then each file written and its manifest record set to match.
 */
async function stageFiles(model: PipelineModel, files: Readonly<Record<string, Buffer>>): Promise<StagedRun> {
  const run = await stageRun(model, Object.fromEntries(Object.keys(files).map((c) => [c, []])));
  for (const [c, bytes] of Object.entries(files)) await writeFile(run.paths.extractFile(c), bytes);
  await updateManifest(run.paths, (m) => {
    for (const [c, bytes] of Object.entries(files)) {
      const record = m.stages.extract!.collections[c]!;
      record.bytes = bytes.length;
      record.sha256 = createHash('sha256').update(bytes).digest('hex');
      record.records = recordsIn(bytes);
      record.documents = record.records;
    }
  });
  return run;
}

/** runTransform with the text path on or off (`textPath` is the lead's new option: cast until it is typed). */
function transform(model: PipelineModel, run: StagedRun, threads: number, textPath: boolean): Promise<TransformReport> {
  return runTransform({ model, stagingDir: run.stagingDir, runId: run.paths.runId, threads, textPath } as TransformOptions);
}

// ── comparing ──────────────────────────────────────────────────────────────────────────────────

async function transformFiles(run: StagedRun): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const names = (await readdir(run.paths.transformDir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  for (const e of names.map((d) => path.relative(run.paths.transformDir, path.join(d.parentPath, d.name))).sort()) {
    out.set(e, await readFile(path.join(run.paths.transformDir, e)));
  }
  return out;
}

const cut = (s: string): string => (s.length > 400 ? `${s.slice(0, 400)}… (${s.length} characters)` : s);

/** Where two files first differ: line number and both lines. */
function firstDifference(oracle: Buffer, text: Buffer): string {
  let at = 0;
  while (at < oracle.length && at < text.length && oracle[at] === text[at]) at += 1;
  const lineStart = oracle.lastIndexOf(0x0a, at - 1) + 1;
  const line = oracle.subarray(0, lineStart).filter((b) => b === 0x0a).length + 1;
  const lineOf = (b: Buffer): string => {
    const end = b.indexOf(0x0a, lineStart);
    return lineStart >= b.length ? '(end of file)' : JSON.stringify(b.toString('utf8', lineStart, end === -1 ? b.length : end));
  };
  return `line ${line} (byte ${at}; ${oracle.length} vs ${text.length} bytes)\n  oracle:    ${cut(lineOf(oracle))}\n  text path: ${cut(lineOf(text))}`;
}

/** A manifest record without its times (none today: dropped if one is added, so only data is compared). */
function withoutTimes(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutTimes);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([k]) => !k.endsWith('_at'))
      .map(([k, x]) => [k, withoutTimes(x)]),
  );
}

async function assertSameStaged(oracle: StagedRun, text: StagedRun, what: string): Promise<void> {
  const a = await transformFiles(oracle);
  const b = await transformFiles(text);
  assert.deepEqual([...b.keys()], [...a.keys()], `${what}: the text path staged other files than the oracle`);
  assert.ok(a.size > 0, `${what}: the oracle staged no file`);
  for (const [name, bytes] of a) {
    const other = b.get(name)!;
    if (!bytes.equals(other)) assert.fail(`${what}: transform/${name} differs from the oracle's at ${firstDifference(bytes, other)}`);
  }
  const tables = async (run: StagedRun) => {
    const section = (await readManifest(run.paths)).stages.transform!;
    return { status: section.status, not_extracted: section.not_extracted, tables: withoutTimes(section.tables) };
  };
  const expected = await tables(oracle);
  const actual = await tables(text);
  for (const table of Object.keys(expected.tables as object)) {
    assert.deepEqual((actual.tables as Record<string, unknown>)[table], (expected.tables as Record<string, unknown>)[table], `${what}: the manifest's transform record of ${table} differs from the oracle's`);
  }
  assert.deepEqual(actual, expected, `${what}: the manifest's transform section differs from the oracle's`);
}

/** Every generated line is a document JSON.parse takes, with an `_id` (else the run would only prove both paths fail). */
function assertParsable(files: Readonly<Record<string, Buffer>>, what: string): void {
  for (const [c, bytes] of Object.entries(files)) {
    bytes
      .toString('utf8')
      .split('\n')
      .forEach((raw, i) => {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
        if (line === '') return;
        let doc: unknown;
        try {
          doc = JSON.parse(line);
        } catch (e) {
          assert.fail(`${what}: the generator wrote a line JSON.parse refuses, ${c} line ${i + 1}: ${(e as Error).message}\n  ${cut(JSON.stringify(line))}`);
        }
        assert.ok(typeof doc === 'object' && doc !== null && !Array.isArray(doc) && '_id' in doc, `${what}: ${c} line ${i + 1} is not a document with an _id`);
      });
  }
}

// ── pipelines ──────────────────────────────────────────────────────────────────────────────────

const TIMEZONES = ['America/New_York', 'Pacific/Kiritimati', 'UTC', 'Asia/Kolkata', 'Pacific/Pago_Pago'];

interface ColumnSpec {
  name: string;
  sql_type: string;
  nullable?: boolean;
}
interface TableSpec {
  additional_columns?: ColumnSpec[];
  columns?: ColumnSpec[];
  additional_mappings?: Record<string, string>;
  filter?: unknown;
}
interface PipelineSpec {
  settings: Record<string, unknown>;
  tables: Record<string, TableSpec>;
}

/**
 * pipeline.yaml edited where the text path has bounds to respect: VARCHAR(3), and 23/24/25 around an
 * ObjectId's 24 hex digits; a NOT NULL column; INTEGER, BIGINT, NUMERIC and JSONB columns; a dotted
 * path; filters with $in (numbers, booleans, null among the values) and $exists; NUL characters
 * stripped; the day of a DATE in another zone (picked by the seed).
 */
async function editedPipeline(seed: number): Promise<PipelineModel> {
  const spec = parse(await readFile(PIPELINE_FILE, 'utf8')) as PipelineSpec;
  const column = (table: string, name: string): ColumnSpec => {
    const t = spec.tables[table];
    const found = [...(t?.additional_columns ?? []), ...(t?.columns ?? [])].find((c) => c.name === name);
    assert.ok(found, `pipeline.yaml has no column ${table}.${name}: update editedPipeline() in test/transform/text-path.test.ts`);
    return found;
  };
  const add = (table: string, ...columns: ColumnSpec[]) => spec.tables[table]!.additional_columns!.push(...columns);
  spec.settings.timezone = TIMEZONES[seed % TIMEZONES.length];
  spec.settings.nul_character = 'strip';
  // Short bounds on columns that do not come before the new NUMERIC and JSONB ones (a refused value ends its row).
  column('targets', 'name').sql_type = 'VARCHAR(3)';
  column('companies', 'name').sql_type = 'VARCHAR(24)';
  column('appointment_types', 'title').sql_type = 'VARCHAR(25)';
  column('items', 'updated_by').sql_type = 'VARCHAR(23)';
  column('users', 'insurer').sql_type = 'VARCHAR(1)';
  column('events', 'company_id').sql_type = 'VARCHAR(24)';
  column('coachings', 'user_id').sql_type = 'VARCHAR(25)';
  column('categories', 'type').nullable = false;
  column('offers', 'duration').sql_type = 'INTEGER';
  column('offers', 'coaching_credit').sql_type = 'BIGINT';
  column('items', 'description').sql_type = 'JSONB';
  add('offers', { name: 'price', sql_type: 'NUMERIC(5,1)' });
  add('ingredients', { name: 'calories', sql_type: 'NUMERIC' }, { name: 'unit', sql_type: 'JSONB' });
  add('users', { name: 'city', sql_type: 'VARCHAR(10)' });
  spec.tables.users!.additional_mappings = { ...spec.tables.users!.additional_mappings, 'address.city': 'city' };
  spec.tables.menus!.filter = { __t: { $in: ['menu', 'webinar', 7, true, null] } };
  spec.tables.contents!.filter = { type: { $exists: true } };
  return pipelineModel(stringify(spec));
}

// ── the proof ──────────────────────────────────────────────────────────────────────────────────

async function proveSame(model: PipelineModel, seed: number, label: string): Promise<void> {
  const threads = threadsFor(seed);
  const what = `seed ${seed}, ${label} pipeline, ${threads} thread(s), ${DOCS} lines per collection (replay: ${replay(seed)})`;
  const { files, tally } = generateExtract(model, { seed, docs: DOCS });
  assertParsable(files, what);
  assert.ok(tally.realistic > 0 && tally.bson > 0 && tally.text > 0, `${what}: every kind of line is there (${JSON.stringify(tally)})`);
  const oracleRun = await stageFiles(model, files);
  const textRun = await stageFiles(model, files);
  const oracle = await transform(model, oracleRun, threads, false);
  const text = await transform(model, textRun, threads, true);
  await assertSameStaged(oracleRun, textRun, what);
  assert.deepEqual(text.tables, oracle.tables, `${what}: the reports' tables differ`);
  assert.equal(text.documentsRead, oracle.documentsRead, `${what}: documents read`);
  // Not vacuous: rows written and rejected, in every table.
  const rows = oracle.tables.reduce((n, t) => n + t.rows, 0);
  const rejected = oracle.tables.reduce((n, t) => n + t.rejected, 0);
  assert.ok(rows > 0 && rejected > 0, `${what}: rows ${rows}, rejected ${rejected}`);
}

for (const seed of SEEDS) {
  test(`seed ${seed}: the text path stages every file and record as JSON.parse does (pipeline.yaml)`, async () => {
    await proveSame(await pipelineModel(), seed, 'the project');
  });

  test(`seed ${seed}: the same with an edited pipeline (short VARCHARs, NOT NULL, NUMERIC, JSONB, dotted path, filters, NUL strip, time zone)`, async () => {
    await proveSame(await editedPipeline(seed), seed, 'the edited');
  });
}

test('a seed replays: the generator writes the same bytes for the same seed and model, and other bytes for another seed', async () => {
  const model = await pipelineModel();
  const seed = SEEDS[0] ?? 1;
  const once = generateExtract(model, { seed, docs: 40 }).files;
  const again = generateExtract(model, { seed, docs: 40 }).files;
  assert.deepEqual(Object.keys(again), Object.keys(once));
  for (const c of Object.keys(once)) assert.ok(again[c]!.equals(once[c]!), `${c}: seed ${seed} wrote other bytes the second time`);
  const other = generateExtract(model, { seed: seed + 1, docs: 40 }).files;
  assert.ok(Object.keys(once).some((c) => !other[c]!.equals(once[c]!)), 'another seed writes other lines');
});

/** The error's class, code, message, hint and context, with the two runs' folders made alike. */
function errorShape(e: unknown, run: StagedRun): unknown {
  assert.ok(e instanceof EtlError, `an EtlError, got ${String(e)}`);
  const same = (s: string) => s.split(run.paths.dir).join('<run>').split(run.paths.runId).join('<run-id>');
  return { class: e.constructor.name, code: e.code, message: same(e.message), hint: same(e.hint ?? ''), context: JSON.parse(same(JSON.stringify(e.context))) as unknown };
}

test('a line JSON.parse refuses fails both paths with the same error, naming the same line', async () => {
  const model = await pipelineModel();
  const seed = SEEDS[0] ?? 1;
  const rng = new Rng(hash(seed, 0xbad));
  const { files } = generateExtract(model, { seed, docs: 12 });
  const collections = Object.keys(files);
  for (const bad of BAD_LINES) {
    const collection = rng.pick(collections);
    const lines = files[collection]!.toString('utf8').split('\n');
    lines.splice(rng.int(0, lines.length - 1), 0, bad);
    const damaged = { ...files, [collection]: Buffer.from(lines.join('\n'), 'utf8') };
    const threads = threadsFor(seed);
    const failure = async (textPath: boolean): Promise<{ error: unknown; status: string | undefined }> => {
      const run = await stageFiles(model, damaged);
      const error = await transform(model, run, threads, textPath).then(
        () => assert.fail(`the transform took the line ${JSON.stringify(bad)} (${collection}, ${textPath ? 'text path' : 'oracle'})`),
        (e: unknown) => errorShape(e, run),
      );
      return { error, status: (await readManifest(run.paths)).stages.transform?.status };
    };
    const oracle = await failure(false);
    assert.equal((oracle.error as { code: string }).code, 'bad_ndjson', `the oracle refuses ${JSON.stringify(bad)} as bad_ndjson`);
    assert.deepEqual(await failure(true), oracle, `the text path fails otherwise on the line ${JSON.stringify(bad)} in ${collection}`);
  }
});
