// The randomized proof of a unique constraint beside the key a table merges on (load/unique-values.ts):
// pipeline.yaml with `users.email` declared unique, a small sample whose users collection has the
// app's unique index on email (and more users registered: a small sample holds a handful), a full
// load, then rounds of random email moves among users made through the MongoDB driver, each
// followed by an incremental `etl run --propagate-deletes` (from the
// live server, or from a dump taken just before it) that must leave PostgreSQL equal to a full run
// of MongoDB as it is then. The source holds each email once at every step; between two runs a value
// moves from one row to another, and the row that held it leaves (its document deleted, or refused)
// or changes too. Every edit dates the document now, except a restore (old _id and dates). The moves
// are email-mover.ts's UNIQUE_MOVES; unique-clash-randomized.test.ts makes users really share emails.
//
// Each round also checks the users table's load figures (manifest.json stages.load.tables.users)
// against what happened to its rows: keys that came, went, and rows that changed.
//
// Replay or extend a seed (the _ids of the users the test registers differ from one replay to the
// next; their order, so the moves, do not):
//   UNIQUE_SEEDS=7 UNIQUE_ROUNDS=6 UNIQUE_MOVES=20 UNIQUE_SCALE=200 UNIQUE_USERS=60 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/unique-randomized.test.ts
// A failure prints the seed, the round, where the run read MongoDB, and every move so far (the
// round's first), with a replay line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { useServers } from '../harness/index.ts';
import { describeSource, EmailMover, figuresBetween, loadRound, replayContext, roundSource, touching, UNIQUE_MOVES, type MoveKind } from './email-mover.ts';
import { assertMirrors, integers, Mirror, uniqueEmailPipeline } from './harness.ts';

const servers = useServers();

const SEEDS = integers('UNIQUE_SEEDS', [1, 2]);
const [ROUNDS] = integers('UNIQUE_ROUNDS', [3]) as [number];
const [MOVES] = integers('UNIQUE_MOVES', [12]) as [number];
const [SCALE] = integers('UNIQUE_SCALE', [60]) as [number];
/** Users registered before the first run, beside the sample's (a small sample holds a handful). */
const [USERS] = integers('UNIQUE_USERS', [30]) as [number];
/** settings.watermark_margin_seconds: each run reads its round's edits, not the last five minutes' (see pipelineWithMargin). */
const MARGIN_SECONDS = 1;

/** What the default seeds did, all told: the proof is not vacuous. */
const done = { moves: new Map<MoveKind, number>(), inserted: 0, updated: 0, deleted: 0, seeds: 0, dumps: 0 };

for (const seed of SEEDS) {
  test(`seed ${seed}: ${ROUNDS} rounds of ${MOVES} random email moves among users (users.email unique), each loaded incrementally, equal to a full run`, async (t) => {
    const m = await Mirror.open(t, servers);
    const pipeline = await uniqueEmailPipeline(m.work, MARGIN_SECONDS);
    const model = await loadPipeline(pipeline);
    await m.sample(SCALE, seed);
    const mover = await EmailMover.open(await m.db(), seed);
    await mover.populate(USERS);
    await m.incremental(['--propagate-deletes'], pipeline);
    for (let round = 1; round <= ROUNDS; round++) {
      const moves = await mover.applyRound(round, MOVES);
      const source = roundSource(seed, round);
      const where = `seed ${seed}, round ${round} of ${ROUNDS} (read from ${describeSource(source)}), ${MOVES} moves a round, scale ${SCALE} and ${USERS} users more`;
      const replay = `UNIQUE_SEEDS=${seed} UNIQUE_ROUNDS=${round} UNIQUE_MOVES=${MOVES} UNIQUE_SCALE=${SCALE} UNIQUE_USERS=${USERS} node --import tsx --test test/mirror/unique-randomized.test.ts`;
      const context = replayContext(where, replay, round, mover.applied);
      try {
        assert.equal(moves.length, MOVES, `round ${round}: every move applied`);
        const { figures, before, after } = await loadRound(m, pipeline, round, source);
        if (source !== 'live') done.dumps += 1;
        assert.deepEqual(figures, figuresBetween(before, after), `round ${round}: the users table's load figures say what happened to its rows`);
        await assertMirrors(model, m.incrementalUrl, await m.reference(pipeline), { examples: 5, annotate: (row) => touching(mover.applied, row) });
        done.inserted += figures.inserted;
        done.updated += figures.updated;
        done.deleted += figures.deleted;
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${context}`, { cause: e });
      }
      for (const move of moves) done.moves.set(move.kind, (done.moves.get(move.kind) ?? 0) + 1);
    }
    done.seeds += 1;
  });
}

test('the default seeds made every kind of move, and the loads inserted, updated and deleted users rows', (t) => {
  const chosen = ['UNIQUE_SEEDS', 'UNIQUE_ROUNDS', 'UNIQUE_MOVES', 'UNIQUE_SCALE', 'UNIQUE_USERS'].filter((v) => process.env[v] !== undefined);
  if (chosen.length > 0) return t.skip(`${chosen.join(', ')} set: not the default seeds`);
  assert.equal(done.seeds, SEEDS.length, 'every seed ran its rounds');
  const missing = UNIQUE_MOVES.map(([kind]) => kind).filter((kind) => !done.moves.has(kind));
  assert.deepEqual(missing, [], `moves made: ${JSON.stringify(Object.fromEntries(done.moves))}`);
  const figures = `users rows inserted ${done.inserted}, updated ${done.updated}, deleted ${done.deleted}`;
  assert.ok(done.inserted > 0 && done.updated > 0 && done.deleted > 0, figures);
  assert.ok(done.dumps > 0, 'a round read a dump');
  t.diagnostic(`moves: ${[...done.moves].map(([k, n]) => `${k} ${n}`).join(', ')}; ${figures}; ${done.dumps} round(s) read a dump`);
});
