// The sample generator's entry point: a Wappizy-shaped database, deterministic (a seed gives the
// same documents, hence the same bytes), streamed one document at a time per collection.
import type { Document } from 'bson';
import { documentsOf } from './documents.ts';
import { MAX_SCALE, MIN_SCALE, SAMPLE_COLLECTIONS, type SampleCollection, type SamplePlan } from './plan.ts';
import { World } from './world.ts';

export { SAMPLE_COLLECTIONS, MIN_SCALE, MAX_SCALE, type SampleCollection, type SamplePlan };

export const DEFAULT_SCALE = 20_000;
export const DEFAULT_SEED = 1;

export interface SampleOptions {
  /** Documents in all collections together. */
  readonly scale: number;
  /** Any integer in [0, 2^32); the same seed and scale give the same documents. */
  readonly seed: number;
}

export interface SampleCollectionSource {
  readonly name: SampleCollection;
  readonly count: number;
  /** A fresh lazy iteration of the collection's documents each call. */
  documents(): Iterable<Document>;
}

export interface SampleGeneration {
  readonly scale: number;
  readonly seed: number;
  readonly plan: SamplePlan;
  readonly collections: readonly SampleCollectionSource[];
}

export function generateSample({ scale, seed }: SampleOptions): SampleGeneration {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 4294967295], got ${seed}`);
  const world = new World(scale, seed);
  return Object.freeze({
    scale,
    seed,
    plan: world.plan,
    collections: Object.freeze(
      SAMPLE_COLLECTIONS.map((name) => Object.freeze({ name, count: world.plan[name], documents: () => documentsOf(world, name) })),
    ),
  });
}
