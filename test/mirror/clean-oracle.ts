// What `etl clean` may remove of a run transformed and not loaded (audit/superseded.ts), said again
// from the test's side, for the randomized tests' oracles.
import type { Manifest } from '../../staging/manifest.ts';

/**
 * The loaded run `b` read every change the not-loaded run `a` carried: loaded into the database `a`'s
 * load recorded, into every table `a` transformed (etl_runs: `loadedTables`), and each collection `a`
 * read (its `_id` set too) read in full or from the same watermark or an earlier one.
 */
export function covers(a: Manifest, b: Manifest, loadedTables: ReadonlySet<string> | undefined): boolean {
  if (!a.destination || b.destination?.description !== a.destination.description) return false;
  if (!Object.keys(a.stages.transform?.tables ?? {}).every((t) => loadedTables?.has(t))) return false;
  return Object.entries(a.stages.extract?.collections ?? {}).every(([name, ra]) => {
    const rb = b.stages.extract?.collections[name];
    const [from, fromA] = [rb?.watermark?.from, ra.watermark?.from];
    if (rb === undefined || from === undefined || rb.requested) return false;
    const ids = (ra.ids?.tables ?? []).every((t) => from === null || rb.ids?.tables.includes(t));
    return ids && (from === null || (typeof fromA === 'string' && Date.parse(from) <= Date.parse(fromA)));
  });
}
