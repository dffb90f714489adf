// The drift proof: every number `etl diff --deep` prints is true, and `etl repair` restores an exact
// mirror, against random drift. A generated sample in FerretDB, a full load, then rounds of drift of
// three kinds drawn at random: MongoDB edits with no run after them (the source moved ahead), edits
// behind the watermark's back (a field changed with the dates kept or set into the past, a document
// deleted with no --propagate-deletes run), and hand edits in PostgreSQL (rows deleted with what
// references them, values changed, references NULLed, rows inserted under fresh keys, links
// deleted). Then per table `etl diff --deep --json` must print exactly the difference between
// PostgreSQL and a reference database filled by a full run of MongoDB as it is now (derived below,
// with the README's exceptions); `etl repair` (sometimes first on a subset of tables) must leave
// every table equal to that reference and diff clean; sometimes an incremental run after more edits
// must still end exact (repair moved no watermark and kept the contributions right).
//
// Replay or extend a seed locally:
//   DRIFT_SEEDS=7 DRIFT_ROUNDS=4 DRIFT_EDITS=120 DRIFT_SCALE=3000 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/drift-randomized.test.ts
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ObjectId, type Db, type Document } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { etl, type CliResult } from '../harness/cli.ts';
import { hash, Rng } from '../../sample/prng.ts';
import type { PipelineModel, TableModel } from '../../model/types.ts';
import type { TableDiff as DiffFigures } from '../../inspect/diff.ts';
import { dedupeKeys, EditGenerator, formatEdit, type Edit } from './edits.ts';
import { assertMirrors, editKinds, editsTouching, HandEditor, integers, keyedRows, Mirror, PIPELINE, stagedRows, type KeyedRow } from './harness.ts';

const servers = useServers();

const SEEDS = integers('DRIFT_SEEDS', [1]);
const [ROUNDS] = integers('DRIFT_ROUNDS', [3]) as [number];
const [EDITS] = integers('DRIFT_EDITS', [60]) as [number];
const [SCALE] = integers('DRIFT_SCALE', [1000]) as [number];

/** The three kinds of drift, drawn per edit. */
const DRIFT_WEIGHTS = [
  ['ahead', 4],
  ['behind', 3],
  ['by_hand', 4],
] as const;

/** `starts`: where each round's edits begin in `edits` (the generator numbers its own rounds: r<n> in each line). */
function replayContext(seed: number, edits: readonly Edit[], starts: readonly number[]): string {
  const byKind = new Map<string, number>();
  for (const e of edits) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
  const lines = edits.map((e, i) => {
    const round = starts.indexOf(i);
    return `${round >= 0 ? `  round ${round + 1}:\n` : ''}    ${formatEdit(e)}`;
  });
  return [
    `seed ${seed}, scale ${SCALE}, ${ROUNDS} round(s) of ${EDITS} drift edits; replay with`,
    `  DRIFT_SEEDS=${seed} DRIFT_ROUNDS=${ROUNDS} DRIFT_EDITS=${EDITS} DRIFT_SCALE=${SCALE} node --import tsx --test --test-timeout=1800000 test/mirror/drift-randomized.test.ts`,
    `edits by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`,
    'every edit applied (pg_*: in PostgreSQL by hand, the others in MongoDB; quiet_*/backdated_*: behind the watermark):',
    ...lines,
  ].join('\n');
}

/** `etl <command>` against the test's MongoDB and the incremental database. */
function against(m: Mirror, command: 'diff' | 'repair', extra: readonly string[]): Promise<CliResult> {
  const staging = command === 'repair' ? ['--staging', m.incrementalStaging] : [];
  return etl([command, '--mongo-url', m.mongo.url, '--mongo-db', m.mongo.name, '--database-url', m.incrementalUrl, '--pipeline', PIPELINE, ...staging, ...extra]);
}

interface DiffJson {
  readonly identical: boolean;
  readonly tables: readonly DiffFigures[];
}

async function deepDiff(m: Mirror): Promise<{ code: number | null; report: DiffJson; stderr: string }> {
  const r = await against(m, 'diff', ['--deep', '--json', '--limit', '20']);
  assert.ok(r.code === 0 || r.code === 1, `etl diff --deep failed (${r.code}):\n${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as DiffJson, stderr: r.stderr };
}

/** What diff must print for one table, with the keys behind each figure (for the failure message). */
interface Expected {
  readonly missing: string[];
  readonly extra: string[];
  readonly different: string[];
  /** Keys the truth counts but diff, by the README, does not: `<key> (<why>)`. */
  readonly notDifferences: string[];
}

/** The values of the set of a referenced column in the incremental database, cached per round. */
type Present = (table: string, column: string) => Promise<Set<string>>;

function presentIn(url: string, model: PipelineModel): Present {
  const cache = new Map<string, Promise<Set<string>>>();
  return (table, column) => {
    const k = `${table}.${column}`;
    if (!cache.has(k)) {
      const key = model.tables.get(table)!.mergeKey;
      cache.set(k, keyedRows(url, table, key).then((rows) => new Set([...rows.values()].map((r) => r.values[column]!).filter((v) => v !== null))));
    }
    return cache.get(k)!;
  };
}

/**
 * The keys of PostgreSQL rows that belong to a document transform rejects today (the reference
 * run's transform/<table>.rejects.ndjson, its documents read from MongoDB): diff lists those as
 * rejected, never as extra (README: "a PostgreSQL row with their key is not extra (the document
 * exists)"). An upsert table's row is keyed by the _id; a dedupe table's by the key the document
 * names; a link table's by each current item of the parent, or, for a parent refused whole
 * (not_an_array), every link of the parent (`parents`).
 */
async function rejectedKeys(table: TableModel, folder: string, db: Db): Promise<{ keys: Set<string>; parents: Set<string> }> {
  const text = await readFile(path.join(folder, 'transform', `${table.name}.rejects.ndjson`), 'utf8').catch(() => '');
  const keys = new Set<string>();
  const parents = new Set<string>();
  for (const line of text.split('\n').filter(Boolean)) {
    const reject = JSON.parse(line) as { collection: string; _id: string; reason: string };
    if (table.strategy === 'upsert') keys.add(`(${reject._id})`);
    else if (table.strategy === 'explode' && reject.reason === 'not_an_array') parents.add(reject._id);
    else {
      const doc = await db.collection(reject.collection).findOne({ _id: ObjectId.isValid(reject._id) ? new ObjectId(reject._id) : (reject._id as never) });
      if (!doc) continue;
      for (const k of table.strategy === 'dedupe' ? dedupeKeys(reject.collection, doc) : linkKeys(table, doc)) keys.add(`(${k})`);
    }
  }
  return { keys, parents };
}

/** The (parent, item[, constant]) keys of a document's current array items, as the key's ROW text. */
function linkKeys(table: TableModel, doc: Document): string[] {
  const spec = table.explode!;
  const idText = (v: unknown) => (v instanceof ObjectId ? v.toHexString() : typeof v === 'string' ? v : null);
  const out: string[] = [];
  for (const array of spec.arrays) {
    const items = doc[array.field];
    if (!Array.isArray(items)) continue;
    for (const item of items) {
      const id = idText(array.itemIdKey && item && typeof item === 'object' && !(item instanceof ObjectId) ? (item as Document)[array.itemIdKey] : item);
      if (id === null) continue;
      const values: Record<string, string> = { ...array.constants, [spec.parentColumn]: idText(doc._id)!, [array.itemColumn]: id };
      out.push(table.mergeKey.map((c) => values[c]).join(','));
    }
  }
  return out;
}

/**
 * What `etl diff --deep` must print for one table, derived from the rows a full run of MongoDB as it
 * is now stages for the table (`staged`: the reference run's transform CSV, before its load checked
 * any reference) against the incremental database, by the README's rules:
 * - a staged row whose reference (on_missing: reject) points at a row PostgreSQL lacks is refused,
 *   not missing: a load refuses it too (diff --help); its key in PostgreSQL is compared as any row;
 * - a set_null reference whose row PostgreSQL lacks is compared as the NULL a load would write;
 * - a PostgreSQL row of a document transform rejects today is not extra (the document exists);
 * - references are judged against the rows PostgreSQL holds, not against a full run's: a link to an
 *   event deleted from MongoDB (still in PostgreSQL) is no difference of the link table until the
 *   event's row goes, as a load judges it; etl repair removes both (checked after it, against the
 *   reference database itself).
 */
async function expectedFigures(table: TableModel, incremental: Map<string, KeyedRow>, staged: Map<string, KeyedRow>, present: Present, rejected: { keys: Set<string>; parents: Set<string> }): Promise<Expected> {
  const out: Expected = { missing: [], extra: [], different: [], notDifferences: [] };
  const references = table.stagedColumns.filter((c) => c.foreignKey);
  const absent = async (column: string, value: string | null | undefined): Promise<boolean> => {
    const fk = table.stagedColumns.find((c) => c.name === column)!.foreignKey!;
    return value !== null && value !== undefined && !(await present(fk.table, fk.column)).has(value);
  };
  for (const [key, row] of staged) {
    const mine = incremental.get(key);
    if (!mine) {
      let refused: string | null = null;
      for (const c of references.filter((x) => x.foreignKey!.onMissing === 'reject')) if (!refused && (await absent(c.name, row.values[c.name]))) refused = c.name;
      if (refused) out.notDifferences.push(`${key} (refused: ${refused} ${row.values[refused]})`);
      else out.missing.push(key);
      continue;
    }
    const columns: string[] = [];
    const nulled: string[] = [];
    for (const c of table.stagedColumns.filter((x) => !table.mergeKey.includes(x.name))) {
      let want = row.values[c.name] ?? null;
      if (c.foreignKey?.onMissing === 'set_null' && (await absent(c.name, want))) {
        nulled.push(c.name);
        want = null;
      }
      if (want !== (mine.values[c.name] ?? null)) columns.push(c.name);
    }
    if (columns.length > 0) out.different.push(`${key} [${columns.join(', ')}]`);
    else if (nulled.length > 0 && nulled.some((c) => row.values[c] !== mine.values[c])) out.notDifferences.push(`${key} (set_null: ${nulled.join(', ')})`);
  }
  for (const [key, row] of incremental) {
    if (staged.has(key)) continue;
    const parent = table.explode ? row.values[table.explode.parentColumn]! : null;
    if (rejected.keys.has(key) || (parent !== null && rejected.parents.has(parent))) out.notDifferences.push(`${key} (rejected)`);
    else out.extra.push(key);
  }
  return out;
}

/** Per table, diff's figures against the derived ones; a failure names the rows and the edits behind them. */
async function assertDiffTrue(m: Mirror, round: number, reference: { url: string; folder: string }, edits: readonly Edit[], context: string): Promise<Tally> {
  const { code, report, stderr } = await deepDiff(m);
  const present = presentIn(m.incrementalUrl, m.model);
  const db = await m.db();
  const wrong: string[] = [];
  let differs = false;
  const tally: Tally = { tables: 0, missing: 0, extra: 0, different: 0, notDifferences: {} };
  for (const name of m.tables) {
    const table = m.model.tables.get(name)!;
    const mine = await keyedRows(m.incrementalUrl, name, table.mergeKey);
    const staged = await stagedRows(reference.url, reference.folder, name, table.mergeKey);
    const expected = await expectedFigures(table, mine, staged, present, await rejectedKeys(table, reference.folder, db));
    const printed = report.tables.find((t) => t.table === name);
    assert.ok(printed, `round ${round}: diff reports ${name}`);
    const got = { missing: printed.missing.count, extra: printed.extra.count, different: printed.different?.count ?? 0 };
    const want = { missing: expected.missing.length, extra: expected.extra.length, different: expected.different.length };
    differs ||= want.missing + want.extra + want.different > 0;
    count(tally, want, expected.notDifferences);
    if (got.missing === want.missing && got.extra === want.extra && got.different === want.different) continue;
    const rows = (label: string, keys: readonly string[]) => keys.slice(0, 8).map((k) => `    ${label} ${k}\n        ${editsTouching(edits, k)}`);
    wrong.push(
      [
        `${name}: diff printed missing ${got.missing}, extra ${got.extra}, different ${got.different}; the truth is missing ${want.missing}, extra ${want.extra}, different ${want.different}`,
        `  diff's samples: ${JSON.stringify({ missing: printed.missing.sample.map((s) => s.key), extra: printed.extra.sample.map((s) => s.key), different: printed.different?.sample.map((s) => [s.key, s.columns]), refused: printed.refused.count, rejected: printed.rejected.count, rejectedInPostgres: printed.rejected.inPostgres })}`,
        ...rows('missing', expected.missing),
        ...rows('extra', expected.extra),
        ...rows('different', expected.different),
        ...rows('not a difference', expected.notDifferences),
      ].join('\n'),
    );
  }
  assert.ok(wrong.length === 0, `round ${round}: etl diff --deep printed figures that are not true in ${wrong.length} table(s):\n${wrong.join('\n')}\n${context}`);
  // diff --help: exit 1 when they differ, 0 when identical.
  assert.equal(code, differs ? 1 : 0, `round ${round}: etl diff --deep exits ${differs ? 1 : 0}:\n${stderr}\n${context}`);
  assert.equal(report.identical, !differs, `round ${round}: diff's "identical"\n${context}`);
  return tally;
}

/** What a round's diff found, for the test's diagnostics (and to show the proof is not vacuous). */
interface Tally {
  tables: number;
  missing: number;
  extra: number;
  different: number;
  /** By reason: refused, rejected, set_null. */
  notDifferences: Record<string, number>;
}

function count(tally: Tally, figures: { missing: number; extra: number; different: number }, notDifferences: readonly string[]): void {
  if (figures.missing + figures.extra + figures.different > 0) tally.tables += 1;
  tally.missing += figures.missing;
  tally.extra += figures.extra;
  tally.different += figures.different;
  for (const n of notDifferences) {
    const reason = /\((\w+)/.exec(n.slice(n.lastIndexOf(' (')))?.[1] ?? 'other';
    tally.notDifferences[reason] = (tally.notDifferences[reason] ?? 0) + 1;
  }
}

const describeTally = (t: Tally): string =>
  `${t.tables} table(s) differ: ${t.missing} missing, ${t.extra} extra, ${t.different} different; not differences: ${JSON.stringify(t.notDifferences)}`;

/** The drift of one round: `count` edits, each of a kind drawn at random, applied kind by kind. */
async function drift(rng: Rng, generator: EditGenerator, hand: HandEditor, round: number, count: number): Promise<Edit[]> {
  const counts = { ahead: 0, behind: 0, by_hand: 0 };
  for (let i = 0; i < count; i++) counts[rng.weighted(DRIFT_WEIGHTS)] += 1;
  const ahead = await generator.applyRound(counts.ahead);
  const behind = await generator.applyBehind(counts.behind);
  const byHand = await hand.applyRound(round, counts.by_hand);
  return [...ahead, ...behind, ...byHand];
}

/** What etl diff --deep still finds, per table, each row with the edits that touched it. */
async function stillDiffering(m: Mirror, edits: readonly Edit[]): Promise<string> {
  const { report } = await deepDiff(m);
  const lines: string[] = ['etl diff --deep now:'];
  for (const t of report.tables.filter((x) => !x.identical)) {
    lines.push(`  ${t.table}: missing ${t.missing.count}, extra ${t.extra.count}, different ${t.different?.count ?? 0}`);
    const samples = [
      ...t.missing.sample.map((s) => ['missing', s.key] as const),
      ...t.extra.sample.map((s) => ['extra', s.key] as const),
      ...(t.different?.sample ?? []).map((s) => ['different', s.key] as const),
    ];
    for (const [label, key] of samples) {
      const text = `(${Object.values(key).join(',')})`;
      lines.push(`    ${label} ${text}\n        ${editsTouching(edits, text)}`);
    }
  }
  return lines.join('\n');
}

/** `etl repair`, sometimes first on a random subset of tables; then every table must equal the reference. */
async function repairAll(m: Mirror, rng: Rng, round: number, reference: string, edits: readonly Edit[], context: string): Promise<string> {
  let steps = '';
  if (rng.chance(0.4)) {
    const subset = m.tables.filter(() => rng.chance(0.3));
    if (subset.length > 0) {
      const partial = await against(m, 'repair', ['--tables', subset.join(',')]);
      steps = `etl repair --tables ${subset.join(',')} (exit ${partial.code}), then `;
      assert.equal(partial.code, 0, `round ${round}: etl repair --tables ${subset.join(',')} exits 0:\n${partial.stderr}\n${partial.stdout.slice(-3000)}\n${context}`);
    }
  }
  const full = await against(m, 'repair', []);
  steps += 'etl repair';
  if (full.code !== 0) assert.fail(`round ${round}: ${steps} exits 0:\n${full.stderr}\n${full.stdout.slice(-3000)}\n${await stillDiffering(m, edits)}\n${context}`);
  await assertMirrors(m.model, m.incrementalUrl, reference, {
    examples: 5,
    annotate: (row) => editsTouching(edits, row),
    classify: (row) => editKinds(edits, row),
    context: `round ${round}: after ${steps}\n${context}`,
  });
  const after = await deepDiff(m);
  const nonZero = after.report.tables.filter((t) => t.missing.count + t.extra.count + (t.different?.count ?? 0) > 0).map((t) => `${t.table} ${t.missing.count}/${t.extra.count}/${t.different?.count}`);
  assert.deepEqual(nonZero, [], `round ${round}: etl diff --deep after ${steps} finds nothing (missing/extra/different)\n${context}`);
  assert.equal(after.code, 0, `round ${round}: etl diff --deep exits 0 after ${steps}\n${context}`);
  return steps;
}

for (const seed of SEEDS) {
  test(`seed ${seed}: ${ROUNDS} rounds of ${EDITS} random drift edits; etl diff --deep prints the true difference, etl repair restores an exact mirror`, async (t) => {
    const m = await Mirror.open(t, servers);
    await m.sample(SCALE, seed);
    await m.incremental(['--propagate-deletes']);
    const rng = new Rng(hash(seed >>> 0, 0xd21f7));
    const generator = await EditGenerator.open(await m.db(), seed);
    const hand = new HandEditor(m.model, m.incrementalUrl, rng);
    const edits: Edit[] = [];
    const starts: number[] = [];
    const context = () => replayContext(seed, edits, starts);
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        starts.push(edits.length);
        edits.push(...(await drift(rng, generator, hand, round, EDITS)));
        const reference = await m.referenceRun();
        const found = await assertDiffTrue(m, round, reference, edits, context());
        t.diagnostic(`round ${round}: ${edits.length - starts.at(-1)!} drift edits; diff: ${describeTally(found)}`);
        // Not vacuous: the drift is seen.
        assert.ok(found.tables > 0, `round ${round}: the drift made some table differ\n${context()}`);
        await repairAll(m, rng, round, reference.url, edits, context());
        // Repair moved no watermark and left the contributions right: more edits, an ordinary
        // incremental run, and the mirror is still exact.
        if (rng.chance(0.5)) {
          edits.push(...(await generator.applyRound(Math.max(1, Math.round(EDITS / 2)))));
          await m.incremental(['--propagate-deletes']);
          await assertMirrors(m.model, m.incrementalUrl, await m.reference(), {
            examples: 5,
            annotate: (row) => editsTouching(edits, row),
            classify: (row) => editKinds(edits, row),
            context: `round ${round}: the incremental run after the repair\n${context()}`,
          });
        }
      }
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      throw new Error(`${(e as Error).message}\n${context()}`, { cause: e });
    }
  });
}
