// The drift proof: every number `etl diff --deep` prints is true, and `etl repair` restores an exact
// mirror, against random drift. A generated sample in FerretDB, a full load, then rounds of drift of
// three kinds drawn at random: MongoDB edits with no run after them (the source moved ahead), edits
// behind the watermark's back (a field changed with the dates kept or set into the past, a document
// deleted with no --propagate-deletes run), and hand edits in PostgreSQL (rows deleted with what
// references them, values changed, references NULLed, rows inserted under fresh keys, links
// deleted). Then per table `etl diff --deep --json` must print exactly the difference between
// PostgreSQL and a reference database filled by a full run of MongoDB as it is now (derived with
// the README's exceptions by harness.ts assertDiffTrue, which the evolution proof shares); `etl
// repair` (sometimes first on a subset of tables) must leave every table equal to that reference and
// diff clean; sometimes an incremental run after more edits must still end exact (repair moved no
// watermark and kept the contributions right).
//
// Replay or extend a seed locally:
//   DRIFT_SEEDS=7 DRIFT_ROUNDS=4 DRIFT_EDITS=120 DRIFT_SCALE=3000 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/drift-randomized.test.ts
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { EditGenerator, formatEdit, type Edit } from './edits.ts';
import { assertDiffTrue, assertMirrors, describeTally, editKinds, editsTouching, HandEditor, integers, Mirror, repairAll, shipped } from './harness.ts';

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

/** The drift of one round: `count` edits, each of a kind drawn at random, applied kind by kind. */
async function drift(rng: Rng, generator: EditGenerator, hand: HandEditor, round: number, count: number): Promise<Edit[]> {
  const counts = { ahead: 0, behind: 0, by_hand: 0 };
  for (let i = 0; i < count; i++) counts[rng.weighted(DRIFT_WEIGHTS)] += 1;
  const ahead = await generator.applyRound(counts.ahead);
  const behind = await generator.applyBehind(counts.behind);
  const byHand = await hand.applyRound(round, counts.by_hand);
  return [...ahead, ...behind, ...byHand];
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
        const found = await assertDiffTrue(m, shipped(m), round, reference, edits, context());
        t.diagnostic(`round ${round}: ${edits.length - starts.at(-1)!} drift edits; diff: ${describeTally(found)}`);
        // Not vacuous: the drift is seen.
        assert.ok(found.tables > 0, `round ${round}: the drift made some table differ\n${context()}`);
        await repairAll(m, shipped(m), rng, round, reference.url, edits, context());
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
