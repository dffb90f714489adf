// Issues 16 and 12 together, the randomized proof that a changed pipeline.yaml is exact too: a
// generated sample in FerretDB, a full run with the shipped pipeline.yaml, then rounds of a few
// random pipeline.yaml edits (test/mirror/pipeline-edits.ts) and a batch of random data edits
// (test/mirror/edits.ts), each round followed by `etl schema --yes [--allow …]` and an incremental
// `etl run --propagate-deletes` with the edited pipeline. After every round, a full run of MongoDB as
// it is with the current pipeline and environment (GLOBAL_DATE_THRESHOLD, which an edit may set)
// into a fresh database, and every table must be equal (ordered checksums by column name;
// users_logbook's SERIAL id aside). A full run reads every document whatever the date thresholds;
// the generator sets none while a table is new (its first run would read from the threshold alone).
//
// A lossy edit (a dropped column, a narrowed type, a replaced primary key) is first tried without its
// --allow: `etl schema` must refuse it, naming the table, the column and the flag, and apply nothing
// of it.
//
// Replay or extend a seed locally:
//   EVOLVE_SEEDS=7 EVOLVE_ROUNDS=6 EVOLVE_PIPELINE_EDITS=3 EVOLVE_EDITS=60 EVOLVE_SCALE=500 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/evolution-randomized.test.ts
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { etl, STACK_LINE, type CliResult } from '../harness/cli.ts';
import { useServers } from '../harness/index.ts';
import { EditGenerator, formatEdit } from './edits.ts';
import { assertMirrors, integers, Mirror, PIPELINE, query } from './harness.ts';
import { formatPipelineEdit, PipelineEditor, type PipelineEdit } from './pipeline-edits.ts';

const servers = useServers();

const SEEDS = integers('EVOLVE_SEEDS', [1, 2]);
const [ROUNDS] = integers('EVOLVE_ROUNDS', [4]) as [number];
const [PIPELINE_EDITS] = integers('EVOLVE_PIPELINE_EDITS', [3]) as [number];
const [EDITS] = integers('EVOLVE_EDITS', [40]) as [number];
const [SCALE] = integers('EVOLVE_SCALE', [300]) as [number];

function assertNoStack(r: CliResult, what: string): void {
  assert.doesNotMatch(r.output, STACK_LINE, `${what} printed a stack trace:\n${r.output}`);
}

interface World {
  readonly seed: number;
  readonly m: Mirror;
  readonly editor: PipelineEditor;
  readonly data: EditGenerator;
  readonly file: string;
  /** The NUL characters written (settings.nul_character decides their rows), as `r<round> <collection> <_id> <field>`. */
  readonly nuls: string[];
}

/** Text fields pipeline.yaml maps, where a NUL character goes (README: NUL characters). */
const NUL_FIELDS: readonly (readonly [string, string])[] = [
  ['messages', 'content'],
  ['users', 'lastname'],
  ['users', 'phone'],
];

/**
 * A U+0000 in a few mapped text fields each round (update_date now, as the app saves): rejected or
 * stripped as settings.nul_character says, so a change of that setting changes rows.
 */
async function writeNuls(w: World, round: number, count: number): Promise<void> {
  const db = await w.m.db();
  for (let i = 0; i < count; i++) {
    const [collection, field] = w.data.rng.pick(NUL_FIELDS);
    const id = w.data.someId(collection);
    if (!id) continue;
    const doc = await db.collection(collection).findOne({ _id: id });
    if (!doc) continue;
    const text = typeof doc[field] === 'string' ? (doc[field] as string) : 'x';
    await db.collection(collection).updateOne({ _id: id }, { $set: { [field]: `${text.slice(0, 3)}\u0000${text.slice(3)}`, update_date: new Date() } });
    w.nuls.push(`r${round} ${collection} ${id.toHexString()} ${field}`);
  }
}

function replayContext(w: World): string {
  const env = `EVOLVE_SEEDS=${w.seed} EVOLVE_ROUNDS=${ROUNDS} EVOLVE_PIPELINE_EDITS=${PIPELINE_EDITS} EVOLVE_EDITS=${EDITS} EVOLVE_SCALE=${SCALE}`;
  return [
    `seed ${w.seed}, scale ${SCALE}, ${ROUNDS} round(s) of ${PIPELINE_EDITS} pipeline edit(s) and ${EDITS} data edit(s); replay with`,
    `  ${env} node --import tsx --test --test-timeout=1800000 test/mirror/evolution-randomized.test.ts`,
    'every pipeline edit applied:',
    ...w.editor.applied.map((e) => `  ${formatPipelineEdit(e)}`),
    ...(w.editor.invalid.length > 0 ? ['pipeline edits the generator drew and the pipeline refused (not applied):', ...w.editor.invalid.map((s) => `  ${s}`)] : []),
    'every data edit applied:',
    ...w.data.applied.map((e) => `  ${formatEdit(e)}`),
    `NUL characters written: ${w.nuls.join(', ')}`,
  ].join('\n');
}

const schemaArgs = (w: World, extra: readonly string[]): string[] => ['schema', '--pipeline', w.file, '--database-url', w.m.incrementalUrl, ...extra];

/** `table.column` of every column of the incremental database. */
async function databaseColumns(url: string): Promise<Set<string>> {
  const rows = await query<{ c: string }>(url, `SELECT table_name || '.' || column_name AS c FROM information_schema.columns WHERE table_schema = current_schema()`);
  return new Set(rows.map((r) => r.c));
}

/** The columns of a table's primary key in the database, sorted (none: empty). */
async function livePrimaryKey(url: string, table: string): Promise<string[]> {
  const rows = await query<{ c: string }>(
    url,
    `SELECT a.attname AS c FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indisprimary AND i.indrelid = to_regclass($1) ORDER BY a.attname COLLATE "C"`,
    [pg.escapeIdentifier(table)],
  );
  return rows.map((r) => r.c);
}

/**
 * The --allow tokens a round needs whose change exists in the database: a dropped column still
 * there, a narrowed column that exists (not one the round adds, nor one of a table it removes), a
 * NOT NULL over a column holding NULLs (without NULLs it loses nothing: applied), a primary key in
 * the database other than pipeline.yaml's (adding one where there is none loses nothing: applied).
 */
async function pendingAllows(w: World, edits: readonly PipelineEdit[]): Promise<string[]> {
  const columns = await databaseColumns(w.m.incrementalUrl);
  const tokens = [...new Set(edits.flatMap((e) => e.allow))];
  const out: string[] = [];
  for (const token of tokens) {
    const [kind, target] = token.split(':') as [string, string];
    if (kind === 'primary-key') {
      const model = w.editor.model.tables.get(target);
      const live = await livePrimaryKey(w.m.incrementalUrl, target);
      if (model && live.length > 0 && live.join() !== [...model.primaryKey].sort().join()) out.push(token);
      continue;
    }
    const [table, column] = target.split('.') as [string, string];
    if (!columns.has(target) || !w.editor.model.tables.has(table)) continue;
    if (kind === 'not-null') {
      const [nulls] = await query<{ n: number }>(w.m.incrementalUrl, `SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(table)} WHERE ${pg.escapeIdentifier(column)} IS NULL`);
      if (nulls!.n === 0) continue;
    }
    out.push(token);
  }
  return out;
}

/** Without its --allow, a lossy change is refused: named with its table, column and flag; exit 0 or 1, never applied. */
async function assertRefusedWithoutAllow(w: World, tokens: readonly string[]): Promise<void> {
  const keys = tokens.filter((t) => t.startsWith('primary-key:')).map((t) => t.slice('primary-key:'.length));
  const keysBefore = await Promise.all(keys.map((t) => livePrimaryKey(w.m.incrementalUrl, t)));
  const r = await etl(schemaArgs(w, ['--yes']), { env: w.editor.env });
  assertNoStack(r, 'etl schema');
  assert.ok(r.code === 0 || r.code === 1, `etl schema --yes without --allow exits 0 or 1, got ${r.code}:\n${r.output}`);
  for (const token of tokens) {
    const named = r.stdout.includes(`apply with: --allow ${token}`) || r.stdout.includes(`then \`etl schema --allow ${token}\` again`);
    assert.ok(named, `etl schema names the refused change and its flag --allow ${token}:\n${r.output}`);
  }
  const columns = await databaseColumns(w.m.incrementalUrl);
  for (const token of tokens.filter((t) => t.startsWith('drop-column:'))) {
    assert.ok(columns.has(token.slice('drop-column:'.length)), `${token}: refused, so the column is still there`);
  }
  for (const [i, table] of keys.entries()) {
    assert.deepEqual(await livePrimaryKey(w.m.incrementalUrl, table), keysBefore[i], `primary-key:${table}: refused, so the primary key is as it was`);
  }
}

/** A change --allow names that waits for a run (rows it would delete are referenced). */
const WAITS_FOR_A_RUN = /not applied yet: .+ reference the rows it would delete: run `etl run` with this pipeline\.yaml first/;

async function evolve(w: World, edits: readonly PipelineEdit[]): Promise<void> {
  const allows = await pendingAllows(w, edits);
  if (allows.length > 0) await assertRefusedWithoutAllow(w, allows);
  const tokens = [...new Set(edits.flatMap((e) => e.allow))];
  const args = schemaArgs(w, ['--yes', ...(tokens.length > 0 ? ['--allow', tokens.join(',')] : [])]);
  let schema = await etl(args, { env: w.editor.env });
  assertNoStack(schema, 'etl schema');
  if (schema.code === 1 && WAITS_FOR_A_RUN.test(schema.stdout)) {
    // Rows the change would delete are referenced: a run deletes them and follows their references
    // first (README, schema evolution), then the change applies.
    await w.m.incremental(['--propagate-deletes'], w.file);
    schema = await etl(args, { env: w.editor.env });
  }
  assert.equal(schema.code, 0, `etl schema --yes${tokens.length > 0 ? ` --allow ${tokens.join(',')}` : ''} exits 0:\n${schema.output}`);
  await w.m.incremental(['--propagate-deletes'], w.file);
}

for (const seed of SEEDS) {
  test(`seed ${seed}: ${ROUNDS} rounds of pipeline.yaml and data edits, each applied by etl schema and an incremental run, equal a full run`, async (t) => {
    const m = await Mirror.open(t, servers);
    await m.sample(SCALE, seed);
    await m.incremental(['--propagate-deletes']);
    const file = path.join(m.work, 'pipeline.yaml');
    const editor = await PipelineEditor.open(await readFile(PIPELINE, 'utf8'), file, seed);
    const w: World = { seed, m, editor, file, data: await EditGenerator.open(await m.db(), seed), nuls: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      try {
        const edits = await editor.applyRound(PIPELINE_EDITS);
        // GLOBAL_DATE_THRESHOLD as the round set it, for its runs and its reference alike.
        m.env = editor.env;
        assert.equal(edits.length, PIPELINE_EDITS, `round ${round}: every pipeline edit applied`);
        for (const e of edits) t.diagnostic(formatPipelineEdit(e));
        assert.equal((await w.data.applyRound(EDITS)).length, EDITS, `round ${round}: every data edit applied`);
        await writeNuls(w, round, 2);
        await evolve(w, edits);
      } catch (e) {
        throw new Error(`round ${round}: ${(e as Error).message}\n${replayContext(w)}`, { cause: e });
      }
      const reference = await m.reference(file);
      await assertMirrors(editor.model, m.incrementalUrl, reference, { examples: 5, context: `after round ${round}\n${replayContext(w)}` });
    }
    assert.deepEqual(editor.invalid, [], 'every pipeline edit the generator drew was a valid pipeline');
  });
}
