// The count identities a finished run must satisfy, computed from its manifest alone (the ones
// staging/manifest-transform.ts documents, plus the links between stages). Together with the file
// checks — each count equals the lines/rows actually in the file — they prove that no document and
// no row went missing between the stages without a recorded reason.
import type { Manifest } from '../staging/manifest.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import type { Identity } from './verify-report.ts';

type Counts = Readonly<Record<string, number>> | undefined | null;

const sum = (counts: Counts): number => Object.values(counts ?? {}).reduce((a, b) => a + (typeof b === 'number' ? b : 0), 0);


/** Records `left = right`, where right is the sum of `parts`, each a number with a label. */
type Check = (table: string, name: string, left: number | undefined, parts: [number | undefined, string][]) => void;

function checker(out: Identity[]): Check {
  return (table, name, left, parts) => {
    const right = parts.reduce((a, [n]) => a + (typeof n === 'number' ? n : NaN), 0);
    const rhs = parts.map(([n, label]) => (label ? `${n ?? '?'} ${label}` : String(n ?? '?'))).join(' + ');
    out.push({ table, name, figures: `${left ?? '?'} = ${rhs}${parts.length > 1 ? ` (= ${right})` : ''}`, ok: left === right });
  };
}

/** Counts per reason as parts of a sum; none is one part, 0 skipped. */
function sumParts(counts: Counts): [number, string][] {
  const entries = Object.entries(counts ?? {});
  return entries.length ? entries.map(([reason, n]) => [n, reason]) : [[0, 'skipped']];
}

export function reconcile(manifest: Manifest): Identity[] {
  const out: Identity[] = [];
  const check = checker(out);
  reconcileExtract(manifest, check);
  reconcileTransform(manifest, check, out);
  reconcileLoad(manifest, check);
  return out;
}

function reconcileExtract(manifest: Manifest, check: Check): void {
  const extract = manifest.stages?.extract;
  if (extract?.status !== 'done') return;
  for (const [collection, c] of Object.entries(extract.collections ?? {})) {
    if (typeof c.documents === 'number') check(collection, 'extract: documents = lines of the NDJSON file', c.documents, [[c.records, '']]);
    // Runs since extract rejects documents it cannot stage: every document read is accounted for.
    if (typeof c.rejected === 'number') {
      check(collection, 'extract: documents read = staged + rejected + left out by the query', c.scanned, [
        [c.documents, 'staged'],
        [c.rejected, 'rejected'],
        [c.unmatched ?? 0, 'left out by the query'],
      ]);
      check(collection, 'extract: rejected = lines of the extract rejects file', c.rejected, [[c.rejects?.records ?? 0, '']]);
      const reasons = Object.entries(c.rejected_reasons ?? {}).map(([reason, n]): [number, string] => [n, reason]);
      if (c.rejected_reasons !== undefined) check(collection, 'extract: rejected = Σ rejected_reasons', c.rejected, reasons.length ? reasons : [[0, '']]);
    }
  }
}

function reconcileTransform(manifest: Manifest, check: Check, out: Identity[]): void {
  const transform = manifest.stages?.transform;
  if (transform?.status !== 'done') return;
  const extract = manifest.stages?.extract;
  for (const [table, t] of Object.entries(transform.tables ?? {})) {
    check(table, 'rows = data rows of the CSV', t.rows, [[t.csv?.records, '']]);
    check(table, 'rejected = lines of the rejects file', t.rejected, [[t.rejects?.records, '']]);
    reconcileStrategy(table, t, check);
    // Transform reads every line of the collection's extract file for each of its tables.
    const c = extract?.collections?.[t.collection];
    if (!c) out.push({ table, name: `documents = documents extracted from ${t.collection}`, figures: `${t.collection} is absent from the extract section`, ok: false });
    else check(table, `documents = documents extracted from ${t.collection}`, t.documents, [[c.records, '']]);
  }
}

function reconcileLoad(manifest: Manifest, check: Check): void {
  const load = manifest.stages?.load;
  if (load?.status !== 'done') return;
  const transform = manifest.stages?.transform;
  for (const [table, l] of Object.entries(load.tables ?? {})) {
    const staged = transform?.tables?.[table];
    // A dedupe table is loaded from its contributions (one row per document that yields one).
    if (typeof l.staged === 'number' && staged?.contrib) check(table, 'load: rows staged (COPY) = rows of the contributions file', l.staged, [[staged.contrib.records, '']]);
    else if (typeof l.staged === 'number') check(table, 'load: rows staged (COPY) = rows of the transform CSV', l.staged, [[staged?.rows, '']]);
    if (typeof l.rows === 'number') check(table, 'load: rows = rows of the transform CSV', l.rows, [[staged?.rows, '']]);
    // Every staged row ends one way (load/table-step.ts counts `unchanged` as what is left); not a
    // dedupe table's, whose merged rows are the keys recomputed, not its contributions.
    if (!staged?.contrib && typeof l.unchanged === 'number') {
      check(table, 'load: staged = inserted + updated + unchanged + rejected + duplicates', l.staged, [
        [l.inserted, 'inserted'],
        [l.updated, 'updated'],
        [l.unchanged, 'unchanged'],
        [l.rejected, 'rejected'],
        [l.duplicates, 'duplicates'],
      ]);
    }
    // The load rejects file lists every refused row and every value set NULL (on_missing: set_null).
    const nulled = typeof l.nulled === 'number' ? l.nulled : 0;
    if (l.rejects) check(table, 'load: lines of the load rejects file = rejected + nulled', l.rejects.records, [[l.rejected, 'rejected'], [nulled, 'nulled']]);
    else check(table, 'load: rejected + nulled = 0 (no load rejects file)', l.rejected + nulled, [[0, '']]);
  }
}

function reconcileStrategy(table: string, t: TransformTableRecord, check: Check): void {
  if (t.strategy === 'explode') {
    const e = t.explode;
    if (!e) {
      check(table, 'explode: the manifest records parents and items', 0, [[1, 'explode section missing']]);
      return;
    }
    // Two populations: parent documents (each becomes a keys row or is rejected/skipped whole) and
    // the array items of the parents (each becomes a CSV row or is rejected/skipped).
    check(table, 'documents = parents + rejected documents + Σ skipped documents', t.documents, [
      [e.parents, 'parents'],
      [e.rejected_documents, 'rejected documents'],
      ...sumParts(e.skipped_documents),
    ]);
    check(table, 'items = rows + rejected items + Σ skipped items', e.items, [[t.rows, 'rows'], [e.rejected_items, 'rejected items'], ...sumParts(e.skipped_items)]);
    check(table, 'rejected = rejected documents + rejected items', t.rejected, [
      [e.rejected_documents, 'rejected documents'],
      [e.rejected_items, 'rejected items'],
    ]);
    check(table, 'Σ skipped = Σ skipped documents + Σ skipped items', sum(t.skipped), [
      [sum(e.skipped_documents), 'skipped documents'],
      [sum(e.skipped_items), 'skipped items'],
    ]);
    // Runs before every document named itself in the keys file: the keys file held the parents.
    if (t.keys && t.unkeyed === undefined) check(table, 'parents = data rows of the keys file', e.parents, [[t.keys.records, '']]);
  } else {
    check(table, 'documents = rows + rejected + Σ skipped', t.documents, [[t.rows, 'rows'], [t.rejected, 'rejected'], ...sumParts(t.skipped)]);
  }
  // A repair run also names the documents it asked for and did not find (absent), any run those extract refused.
  if (t.keys && t.unkeyed !== undefined && t.extract_rejected !== undefined) {
    const left = t.documents + (t.absent ?? 0) + t.extract_rejected;
    check(table, `documents${t.absent === undefined ? '' : ' + absent'} + rejected by extract = data rows of the keys file + unkeyed`, left, [[t.keys.records, 'keys'], [t.unkeyed, 'unkeyed']]);
  } else if (t.keys && t.unkeyed !== undefined && t.absent !== undefined) {
    check(table, 'documents + absent = data rows of the keys file + unkeyed', t.documents + t.absent, [[t.keys.records, 'keys'], [t.unkeyed, 'unkeyed']]);
  } else if (t.keys && t.unkeyed !== undefined) check(table, 'documents = data rows of the keys file + unkeyed', t.documents, [[t.keys.records, 'keys'], [t.unkeyed, 'unkeyed']]);
  if (t.strategy === 'dedupe' && t.dedupe) {
    check(table, 'dedupe: superseded documents = skipped "superseded"', t.dedupe.superseded, [[t.skipped?.superseded ?? 0, '']]);
    if (t.contrib) check(table, 'dedupe: data rows of the contributions file = rows + superseded', t.contrib.records, [[t.rows, 'rows'], [t.dedupe.superseded, 'superseded']]);
  }
}
