// Tells `etl run`'s load, table by table, that a table's staged files are final (StagedTablesSink,
// staging/staged-tables.ts): at once when its collection's files are committed, or, for a table
// that may still get a live keys file (delete propagation: written after every collection), once
// the live keys are staged. A table is told once, with the record the manifest section will hold.
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import type { Manifest } from '../staging/manifest.ts';
import type { StagedTablesSink } from '../staging/staged-tables.ts';

export class TableRelease {
  /** Tables whose record may still change (a `live` record added after every collection). */
  private readonly held: ReadonlySet<string>;

  constructor(
    private readonly sink: StagedTablesSink | undefined,
    manifest: Manifest,
  ) {
    // While extracting, only the run-level record is there (written at the extract's start);
    // afterwards, each collection's ids record too (older runs have only those).
    const extract = manifest.stages.extract;
    const ids = Object.values(extract?.collections ?? {}).flatMap((c) => c.ids?.tables ?? []);
    this.held = new Set([...(extract?.propagate_deletes?.tables ?? []), ...ids]);
  }

  /** The tables the transform will stage, in load order. */
  plan(tables: readonly string[]): void {
    this.sink?.plan(tables);
  }

  /** A collection's tables, their files committed. */
  committed(records: readonly (readonly [string, TransformTableRecord])[]): void {
    for (const [table, record] of records) if (!this.held.has(table)) this.sink?.staged(table, record);
  }

  /** Every collection and the live keys done: the tables held back. */
  finished(records: ReadonlyMap<string, TransformTableRecord>): void {
    for (const [table, record] of records) if (this.held.has(table)) this.sink?.staged(table, record);
  }
}
