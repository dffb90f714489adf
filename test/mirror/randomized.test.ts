// Issue 12 item 7, the randomized proof: a generated sample in FerretDB, a full load, then rounds of
// a few hundred random edits of every kind (test/mirror/edits.ts) each followed by an incremental
// `etl run --propagate-deletes`; at the end a full run of the final MongoDB into a second database,
// and every table must be equal (ordered checksums; users_logbook's SERIAL id aside). The seeds of
// MIRROR_DUMP_SEEDS do the same with every incremental run reading a dump taken just before it
// (the operator's `etl refresh mongo` then `etl run --source <dump>`; a folder of .bson files and a
// gzipped archive in turn), the reference still live.
//
// Replay or extend a seed locally:
//   MIRROR_SEEDS=7 MIRROR_ROUNDS=5 MIRROR_EDITS=300 MIRROR_SCALE=3000 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/randomized.test.ts
// A failure prints, per table, the rows missing, extra and different by key, each with the edits
// that touched its documents, then the seed and every edit applied.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { EditGenerator, formatEdit, RESTORE_WEIGHTS, type Edit } from './edits.ts';
import { assertMirrors, contents, editKinds, editsTouching, integers, Mirror, PIPELINE, type RunReport } from './harness.ts';

const servers = useServers();

const SEEDS = integers('MIRROR_SEEDS', [1, 2, 3]);
const [ROUNDS] = integers('MIRROR_ROUNDS', [3]) as [number];
const [EDITS] = integers('MIRROR_EDITS', [150]) as [number];
const [SCALE] = integers('MIRROR_SCALE', [1000]) as [number];

function replayContext(seed: number, source: 'live' | 'dump', edits: readonly Edit[]): string {
  const byKind = new Map<string, number>();
  for (const e of edits) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
  const seeds = source === 'dump' ? `MIRROR_SEEDS= MIRROR_DUMP_SEEDS=${seed}` : `MIRROR_SEEDS=${seed} MIRROR_DUMP_SEEDS=`;
  return [
    `seed ${seed} (${source}), scale ${SCALE}, ${ROUNDS} round(s) of ${EDITS} edits; replay with`,
    `  ${seeds} MIRROR_ROUNDS=${ROUNDS} MIRROR_EDITS=${EDITS} MIRROR_SCALE=${SCALE} node --import tsx --test test/mirror/randomized.test.ts`,
    `edits by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`,
    'every edit applied:',
    ...edits.map((e) => `  ${formatEdit(e)}`),
  ].join('\n');
}

/** Every collection of an incremental run was read from a watermark (not in full). */
function assertIncremental(report: RunReport, round: number): void {
  const full = report.extract.collections.filter((c) => c.watermark.from === null).map((c) => c.collection);
  assert.deepEqual(full, [], `round ${round}: the run was incremental for every collection`);
}

/**
 * Where each run reads MongoDB: the live server, or a dump of it taken just before the run (what an
 * operator's `etl refresh mongo` then `etl run --source <dump>` does), whose watermark comes from the
 * dates it holds and whose `_id` listing is complete.
 */
type Source = 'live' | 'dump';

const runs: readonly (readonly [number, Source])[] = [
  ...SEEDS.map((seed) => [seed, 'live'] as const),
  ...integers('MIRROR_DUMP_SEEDS', [4]).map((seed) => [seed, 'dump'] as const),
];

for (const [seed, source] of runs) {
  test(`seed ${seed}${source === 'dump' ? ', from dumps' : ''}: ${ROUNDS} rounds of ${EDITS} random edits, each loaded incrementally, end equal to a full run`, async (t) => {
    const m = await Mirror.open(t, servers);
    await m.sample(SCALE, seed);
    // Dumps alternate between a folder of .bson files and a gzipped archive.
    let dumps = 0;
    const from = async (label: string) => (source === 'dump' ? m.dump(label, dumps++ % 2 === 0 ? 'folder' : 'archive') : undefined);
    await m.incremental(['--propagate-deletes'], PIPELINE, await from('full'));
    const loaded = await contents(m.incrementalUrl, m.tables);
    const generator = await EditGenerator.open(await m.db(), seed, RESTORE_WEIGHTS);
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        assert.equal((await generator.applyRound(EDITS)).length, EDITS, `round ${round}: every edit applied`);
        assertIncremental(await m.incremental(['--propagate-deletes'], PIPELINE, await from(`round-${round}`)), round);
      }
    } catch (e) {
      // A run that failed outright: the edits that led there, to replay it.
      throw new Error(`${(e as Error).message}\n${replayContext(seed, source, generator.applied)}`, { cause: e });
    }
    const reference = await m.reference();
    // The proof is not vacuous: the edits changed most tables.
    const final = await contents(reference, m.tables);
    const changed = m.tables.filter((table) => final[table] !== loaded[table]);
    assert.ok(changed.length >= m.tables.length / 2, `the edits changed ${changed.length} of ${m.tables.length} tables: ${changed.join(', ')}`);
    await assertMirrors(m.model, m.incrementalUrl, reference, {
      examples: 5,
      annotate: (row) => editsTouching(generator.applied, row),
      classify: (row) => editKinds(generator.applied, row),
      context: replayContext(seed, source, generator.applied),
    });
  });
}
