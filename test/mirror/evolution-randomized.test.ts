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
// Some rounds run `etl run --since D` instead of the plain incremental run (drawn per round from the
// seed). README ("How a mapping change is backfilled"): `--since` reads the documents created,
// updated or minted at or after D, whatever the watermark and the date thresholds, and does not check
// mappings; a table's new fingerprint is stored only when the read replaced every row the table can
// hold, so the next plain run still reads a changed mapping in full. What that promises, and so what
// is compared, with D not later than the round's first data edit (every document changed since the
// previous run is then read, as a plain run would read it):
// - after the --since run: every table whose mapping (model/fingerprint.ts) is the one its rows were
//   loaded with, and whose referenced tables are such tables too, equals the full run (a changed
//   table may lack the new mapping on documents older than D, and a table referencing it may then
//   hold rows pending on rows it lacks);
// - after the plain run that follows (no edit in between): every table equals it.
// D is either the second before the round's first data edit, or an old date (before or after the
// thresholds the edits set): a read from before a changed table's threshold is no full read of a
// loaded table (model/read-plan.ts coversFullExtent), which only this end-to-end run can show.
//
// Then, with every table equal to the reference, `etl diff --deep` and `etl repair` with the edited
// pipeline.yaml (and the round's GLOBAL_DATE_THRESHOLD), against the same MongoDB, staging and
// database:
// - `etl diff --deep --json` exits 0 and finds nothing, each of its figures true (the drift proof's
//   derivation, harness.ts assertDiffTrue);
// - in some rounds (drawn from the seed, a stream of its own), EVOLVE_HAND_EDITS random edits of
//   PostgreSQL rows by hand (the drift proof's HandEditor: a row deleted with what references it, a
//   value changed, a reference NULLed, a stray row inserted, links deleted), then `etl diff --deep`
//   must print exactly the difference they made per table, `etl repair` (sometimes first on a subset
//   of tables) must leave every table equal to the reference and diff clean, and a plain incremental
//   run after it must still end exact. Under a date threshold (GLOBAL_DATE_THRESHOLD,
//   settings.date_threshold or a table's), diff skips the documents created and updated before it,
//   "neither missing nor extra" (etl diff --help), so repair leaves their rows as they are, while the
//   reference, a full run, holds them all: in such a round the hand edits touch only rows diff
//   compares (handScope).
//
// Replay or extend a seed locally:
//   EVOLVE_SEEDS=7 EVOLVE_ROUNDS=6 EVOLVE_PIPELINE_EDITS=3 EVOLVE_EDITS=60 EVOLVE_HAND_EDITS=8 EVOLVE_SCALE=500 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/evolution-randomized.test.ts
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { etl, STACK_LINE, type CliResult } from '../harness/cli.ts';
import { useServers } from '../harness/index.ts';
import { tableFingerprint } from '../../model/fingerprint.ts';
import { truncatingTable } from '../../model/read-plan.ts';
import type { PipelineModel, TableModel } from '../../model/types.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { EditGenerator, formatEdit, RESTORE_WEIGHTS, type Edit } from './edits.ts';
import { assertDiffTrue, assertMirrors, describeTally, editKinds, editsTouching, HandEditor, integers, Mirror, PIPELINE, query, repairAll, type HandScope, type Mapping, type RunReport } from './harness.ts';
import { formatPipelineEdit, PipelineEditor, type PipelineEdit } from './pipeline-edits.ts';

const servers = useServers();

const SEEDS = integers('EVOLVE_SEEDS', [1, 2]);
const [ROUNDS] = integers('EVOLVE_ROUNDS', [4]) as [number];
const [PIPELINE_EDITS] = integers('EVOLVE_PIPELINE_EDITS', [3]) as [number];
const [EDITS] = integers('EVOLVE_EDITS', [40]) as [number];
const [HAND_EDITS] = integers('EVOLVE_HAND_EDITS', [6]) as [number];
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
  /** Draws each round's run: plain, or --since a date (its own stream: the edits replay whatever it draws). */
  readonly runs: Rng;
  /** The rounds run with --since, as `r<round> --since <D>`. */
  readonly sinceRuns: string[];
  /** Draws the rounds whose PostgreSQL rows are edited by hand, and those edits (its own stream: the other edits replay whatever it draws). */
  readonly drift: Rng;
  /** Every edit made by hand in PostgreSQL, all rounds. */
  readonly hand: Edit[];
  /** The rounds drawn for hand edits and what became of them, as `r<round> <what>`. */
  readonly driftRounds: string[];
}

/** Old --since dates: before, between and after the date thresholds the pipeline edits set (2020-06-01, 2022-01-01, 2023-09-15). */
const OLD_SINCE = ['2020-01-01', '2021-06-01', '2022-06-01', '2024-01-01'];

/**
 * The round's run: null for a plain incremental run (half the rounds), else the --since date: the
 * second before `firstEdit` (ObjectIds hold whole seconds), or an old date.
 */
function drawSince(w: World, firstEdit: Date): Date | null {
  const draw = w.runs.next();
  if (draw < 0.5) return null;
  if (draw < 0.75) return new Date(Math.floor(firstEdit.getTime() / 1000) * 1000 - 1000);
  return new Date(`${w.runs.pick(OLD_SINCE)}T00:00:00Z`);
}

/**
 * Tables whose mapping is the one their rows were loaded with (the fingerprint of the previous
 * round's pipeline, which the previous round's plain run stored), and whose referenced tables are
 * such tables too: a --since run must leave them equal to a full run (see the header).
 */
function settledTables(before: PipelineModel, after: PipelineModel): string[] {
  const unchanged = (name: string): boolean => {
    const old = before.tables.get(name);
    return old !== undefined && tableFingerprint(old, before.settings) === tableFingerprint(after.tables.get(name)!, after.settings);
  };
  const settled = new Set(after.loadOrder.filter(unchanged));
  // Load order puts referenced tables first: one pass settles the references transitively.
  for (const name of after.loadOrder) {
    const refs = after.tables.get(name)!.columns.flatMap((c) => (c.foreignKey && c.foreignKey.table !== name ? [c.foreignKey.table] : []));
    if (refs.some((r) => !settled.has(r))) settled.delete(name);
  }
  return after.loadOrder.filter((t) => settled.has(t));
}

/**
 * Every collection of a --since run was read from D (--since wins over watermarks, thresholds and
 * changed mappings), but a collection of a force_reimport table, or of a table a force_reimport +
 * truncate_before_import table's TRUNCATE … CASCADE empties, which is read in full (model/read-plan.ts).
 */
function assertReadSince(report: RunReport, since: Date, model: PipelineModel): void {
  const tables = [...model.tables.keys()];
  const readInFull = new Set(
    [...model.tables.values()].filter((t) => t.forceReimport || truncatingTable(model, t.name, tables) !== null).map((t) => t.collection),
  );
  for (const c of report.extract.collections) {
    const from = readInFull.has(c.collection) ? null : since.toISOString();
    assert.equal(c.watermark.from, from, `etl run --since ${since.toISOString()} reads ${c.collection} ${from === null ? 'in full (force_reimport or truncate_cascade)' : 'from that date'}`);
  }
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
  const env = `EVOLVE_SEEDS=${w.seed} EVOLVE_ROUNDS=${ROUNDS} EVOLVE_PIPELINE_EDITS=${PIPELINE_EDITS} EVOLVE_EDITS=${EDITS} EVOLVE_HAND_EDITS=${HAND_EDITS} EVOLVE_SCALE=${SCALE}`;
  return [
    `seed ${w.seed}, scale ${SCALE}, ${ROUNDS} round(s) of ${PIPELINE_EDITS} pipeline edit(s) and ${EDITS} data edit(s); replay with`,
    `  ${env} node --import tsx --test --test-timeout=1800000 test/mirror/evolution-randomized.test.ts`,
    'every pipeline edit applied:',
    ...w.editor.applied.map((e) => `  ${formatPipelineEdit(e)}`),
    ...(w.editor.invalid.length > 0 ? ['pipeline edits the generator drew and the pipeline refused (not applied):', ...w.editor.invalid.map((s) => `  ${s}`)] : []),
    'every data edit applied:',
    ...w.data.applied.map((e) => `  ${formatEdit(e)}`),
    `NUL characters written: ${w.nuls.join(', ')}`,
    `rounds run with --since (each followed by a plain run): ${w.sinceRuns.join(', ') || 'none'}`,
    `rounds drawn for hand edits in PostgreSQL: ${w.driftRounds.join(', ') || 'none'}`,
    ...w.hand.map((e) => `  ${formatEdit(e)}`),
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

/** How many rows of the table hold NULL in the column. */
async function nullRows(url: string, table: string, column: string): Promise<number> {
  const [r] = await query<{ n: number }>(url, `SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(table)} WHERE ${pg.escapeIdentifier(column)} IS NULL`);
  return r!.n;
}

/** How many rows the table holds; null when the database has no such table. */
async function rowCount(url: string, table: string): Promise<number | null> {
  const [exists] = await query<{ t: string | null }>(url, 'SELECT to_regclass($1)::text AS t', [pg.escapeIdentifier(table)]);
  if (exists!.t === null) return null;
  const [r] = await query<{ n: number }>(url, `SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(table)}`);
  return r!.n;
}

/** The column is in the table's primary key in pipeline.yaml, not in the database yet, and the table holds rows there. */
async function newKeyColumnOverRows(w: World, table: string, column: string): Promise<boolean> {
  if (!w.editor.model.tables.get(table)!.primaryKey.includes(column)) return false;
  return ((await rowCount(w.m.incrementalUrl, table)) ?? 0) > 0;
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
    if (!w.editor.model.tables.has(table)) continue;
    if (!columns.has(target)) {
      // A primary key over a column the round adds, to a table holding rows: refused without its not-null: (README).
      if (kind === 'not-null' && (await newKeyColumnOverRows(w, table, column))) out.push(token);
      continue;
    }
    if (kind === 'not-null' && (await nullRows(w.m.incrementalUrl, table, column)) === 0) continue;
    out.push(token);
  }
  return out;
}

/** Without its --allow, a lossy change is refused: named with its table, column and flag; exit 0 or 1, never applied. */
async function assertRefusedWithoutAllow(w: World, tokens: readonly string[]): Promise<void> {
  const keys = tokens.filter((t) => t.startsWith('primary-key:')).map((t) => t.slice('primary-key:'.length));
  const keysBefore = await Promise.all(keys.map((t) => livePrimaryKey(w.m.incrementalUrl, t)));
  const columnsBefore = await databaseColumns(w.m.incrementalUrl);
  const notNullTargets = tokens.filter((t) => t.startsWith('not-null:')).map((t) => t.slice('not-null:'.length));
  // A new primary key column (not in the database yet): refused, the rows stay (the column itself may be added nullable, which loses nothing).
  const newKeyColumns = notNullTargets.filter((c) => !columnsBefore.has(c)).map((c) => c.split('.') as [string, string]);
  const rowsBefore = await Promise.all(newKeyColumns.map(([table]) => rowCount(w.m.incrementalUrl, table)));
  const notNull = notNullTargets.filter((c) => columnsBefore.has(c)).map((c) => c.split('.') as [string, string]);
  const nullsBefore = await Promise.all(notNull.map(([table, column]) => nullRows(w.m.incrementalUrl, table, column)));
  const r = await etl(schemaArgs(w, ['--yes']), { env: w.editor.env });
  assertNoStack(r, 'etl schema');
  assert.ok(r.code === 0 || r.code === 1, `etl schema --yes without --allow exits 0 or 1, got ${r.code}:\n${r.output}`);
  // `apply with: --allow a,b` names every token a change needs (a key over a new column: its not-null: too).
  const applyWith = new Set([...r.stdout.matchAll(/apply with: --allow (\S+)/g)].flatMap((x) => x[1]!.split(',')));
  for (const token of tokens) {
    const named = applyWith.has(token) || r.stdout.includes(`then \`etl schema --allow ${token}\` again`);
    assert.ok(named, `etl schema names the refused change and its flag --allow ${token}:\n${r.output}`);
  }
  const columns = await databaseColumns(w.m.incrementalUrl);
  for (const token of tokens.filter((t) => t.startsWith('drop-column:'))) {
    assert.ok(columns.has(token.slice('drop-column:'.length)), `${token}: refused, so the column is still there`);
  }
  for (const [i, table] of keys.entries()) {
    assert.deepEqual(await livePrimaryKey(w.m.incrementalUrl, table), keysBefore[i], `primary-key:${table}: refused, so the primary key is as it was`);
  }
  for (const [i, [table, column]] of newKeyColumns.entries()) {
    assert.equal(await rowCount(w.m.incrementalUrl, table), rowsBefore[i], `not-null:${table}.${column}: refused, so the rows of ${table} stay`);
  }
  for (const [i, [table, column]] of notNull.entries()) {
    assert.equal(await nullRows(w.m.incrementalUrl, table, column), nullsBefore[i], `not-null:${table}.${column}: refused, so its rows holding NULL stay`);
  }
}

/** A change --allow names that waits for a run (rows it would delete are referenced). */
const WAITS_FOR_A_RUN = /not applied yet: .+ reference the rows it would delete: run `etl run` with this pipeline\.yaml first/;

/** `etl schema` for the round's edits, then its incremental run (--since `since` when set); returns that run's report. */
async function evolve(w: World, edits: readonly PipelineEdit[], since: Date | null): Promise<RunReport> {
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
  return w.m.incremental(['--propagate-deletes', ...(since ? ['--since', since.toISOString()] : [])], w.file);
}

/** The round's pipeline.yaml, as `etl diff` and `etl repair` read it. */
const mapping = (w: World): Mapping => ({ file: w.file, model: w.editor.model });

/** The date threshold diff applies to a table (inspect/expected-rows.ts): its own, else GLOBAL_DATE_THRESHOLD, else settings.date_threshold; none under force_reimport. */
function thresholdOf(w: World, table: TableModel): Date | null {
  if (table.forceReimport) return null;
  const global = w.editor.env.GLOBAL_DATE_THRESHOLD;
  return table.dateThreshold ?? (global !== undefined ? new Date(global) : w.editor.model.settings.dateThreshold);
}

/** Hand edits that make no row of another document move: no delete (a deleted row takes the rows referencing it along). */
const IN_PLACE = ['pg_update', 'pg_null_ref', 'pg_insert'] as const;

/**
 * The hand edits `etl diff --deep` sees under the round's date thresholds. Diff skips a document
 * created and updated before its table's threshold, "neither missing nor extra" (etl diff --help),
 * and repair with it, while the reference, a full run, holds its row. With no threshold: any edit.
 * Else edits in place only, on every row of a table without a threshold, and on an upsert table's
 * rows whose creation_date or update_date column (include_base's created_at, updated_at) is at or
 * after its threshold (a document dated otherwise is left alone); no row of any other table.
 */
function handScope(w: World): { scope: HandScope; note: string } {
  const thresholds = [...w.editor.model.tables.values()].flatMap((t) => {
    const d = thresholdOf(w, t);
    return d ? [`${t.name} ${d.toISOString().slice(0, 10)}`] : [];
  });
  if (thresholds.length === 0) return { scope: {}, note: '' };
  const rows = (table: TableModel): string | null => {
    const threshold = thresholdOf(w, table);
    if (!threshold) return 'true';
    if (table.strategy !== 'upsert') return null;
    const dated = table.columns.filter((c) => c.sqlType.kind === 'timestamp' && c.source.kind === 'field' && (c.source.path === 'creation_date' || c.source.path === 'update_date'));
    if (dated.length === 0) return null;
    const at = pg.escapeLiteral(threshold.toISOString().replace('T', ' ').replace('Z', ''));
    return `(${dated.map((c) => `x.${pg.escapeIdentifier(c.name)} >= ${at}::timestamp`).join(' OR ')})`;
  };
  const distinct = [...new Set(thresholds.map((t) => t.slice(t.indexOf(' ') + 1)))];
  return { scope: { kinds: IN_PLACE, rows }, note: ` (under date threshold ${distinct.join(', ')}: in place, on rows diff compares)` };
}

/** `etl diff --deep` with the round's pipeline.yaml, on a mirror equal to the reference: exit 0, nothing found, every figure true. */
async function assertDiffClean(w: World, round: number, reference: { url: string; folder: string }): Promise<void> {
  const found = await assertDiffTrue(w.m, mapping(w), round, reference, w.hand, replayContext(w));
  assert.deepEqual(found.byTable, {}, `round ${round}: etl diff --deep finds no difference (missing/extra/different) in a mirror equal to a full run\n${replayContext(w)}`);
}

/**
 * Some rounds: hand edits in PostgreSQL, `etl diff --deep` prints exactly what they changed, `etl
 * repair` restores the reference, and a plain incremental run after it still ends exact. Returns
 * what the round did, for the diagnostics.
 */
async function driftAndRepair(w: World, round: number, reference: { url: string; folder: string }): Promise<string | null> {
  if (!w.drift.chance(0.5)) return null;
  const { scope, note } = handScope(w);
  const hand = new HandEditor(w.editor.model, w.m.incrementalUrl, w.drift, scope);
  const edits = await hand.applyRound(round, HAND_EDITS);
  w.hand.push(...edits);
  w.driftRounds.push(`r${round} ${edits.length} hand edit(s)${note}`);
  const found = await assertDiffTrue(w.m, mapping(w), round, reference, w.hand, replayContext(w));
  // Not vacuous: every hand edit changes a row diff compares.
  assert.ok(edits.length === 0 || found.tables > 0, `round ${round}: the hand edits made some table differ\n${replayContext(w)}`);
  const steps = await repairAll(w.m, mapping(w), w.drift, round, reference.url, w.hand, replayContext(w));
  // Repair moved no watermark and stored no fingerprint: the next plain run reads as it would have, and the mirror stays exact.
  await w.m.incremental(['--propagate-deletes'], w.file);
  await assertMirrors(w.editor.model, w.m.incrementalUrl, reference.url, {
    examples: 5,
    annotate: (row) => editsTouching(w.hand, row),
    classify: (row) => editKinds(w.hand, row),
    context: `round ${round}: the plain incremental run after ${steps}\n${replayContext(w)}`,
  });
  return `${edits.length} hand edit(s)${note}; diff: ${describeTally(found)} (${Object.entries(found.byTable).map(([t, f]) => `${t} ${f}`).join(', ')}); ${steps}; a plain run after it exact`;
}

for (const seed of SEEDS) {
  test(`seed ${seed}: ${ROUNDS} rounds of pipeline.yaml and data edits, each applied by etl schema and an incremental run, equal a full run; etl diff --deep and etl repair agree`, async (t) => {
    const m = await Mirror.open(t, servers);
    await m.sample(SCALE, seed);
    await m.incremental(['--propagate-deletes']);
    const file = path.join(m.work, 'pipeline.yaml');
    const editor = await PipelineEditor.open(await readFile(PIPELINE, 'utf8'), file, seed);
    const w: World = { seed, m, editor, file, data: await EditGenerator.open(await m.db(), seed, RESTORE_WEIGHTS), nuls: [], runs: new Rng(hash(seed >>> 0, 0x51ce)), sinceRuns: [], drift: new Rng(hash(seed >>> 0, 0x4a4d)), hand: [], driftRounds: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      const before = editor.model;
      let since: Date | null = null;
      try {
        const edits = await editor.applyRound(PIPELINE_EDITS);
        // GLOBAL_DATE_THRESHOLD as the round set it, for its runs and its reference alike.
        m.env = editor.env;
        assert.equal(edits.length, PIPELINE_EDITS, `round ${round}: every pipeline edit applied`);
        for (const e of edits) t.diagnostic(formatPipelineEdit(e));
        since = drawSince(w, new Date());
        if (since) {
          w.sinceRuns.push(`r${round} --since ${since.toISOString()}`);
          t.diagnostic(`r${round} etl run --since ${since.toISOString()}, then a plain run`);
        }
        assert.equal((await w.data.applyRound(EDITS)).length, EDITS, `round ${round}: every data edit applied`);
        await writeNuls(w, round, 2);
        const report = await evolve(w, edits, since);
        if (since) assertReadSince(report, since, editor.model);
      } catch (e) {
        throw new Error(`round ${round}: ${(e as Error).message}\n${replayContext(w)}`, { cause: e });
      }
      const reference = await m.referenceRun(file);
      if (since) {
        const settled = settledTables(before, editor.model);
        const context = `after round ${round}'s etl run --since ${since.toISOString()}, in the tables whose mapping it kept (${settled.join(', ')})\n${replayContext(w)}`;
        await assertMirrors(editor.model, m.incrementalUrl, reference.url, { examples: 5, tables: settled, context });
        // MongoDB is as the reference read it: the plain run reads the changed mappings in full.
        const plain = await m.incremental(['--propagate-deletes'], file);
        const full = plain.extract.collections.filter((c) => c.watermark.from === null).map((c) => c.collection);
        t.diagnostic(`r${round} the plain run after --since read in full: ${full.join(', ') || 'nothing'}`);
      }
      await assertMirrors(editor.model, m.incrementalUrl, reference.url, { examples: 5, context: `after round ${round}\n${replayContext(w)}` });
      try {
        await assertDiffClean(w, round, reference);
        const drifted = await driftAndRepair(w, round, reference);
        if (drifted) t.diagnostic(`r${round} ${drifted}`);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        throw new Error(`round ${round}: ${(e as Error).message}\n${replayContext(w)}`, { cause: e });
      }
    }
    assert.deepEqual(editor.invalid, [], 'every pipeline edit the generator drew was a valid pipeline');
  });
}
