// The transform section of manifest.json (owned by the transform stage).
//
// Counts reconcile, and this section proves it. Per table:
//   upsert, dedupe:  documents = rows + rejected + Σ skipped
//   explode:         documents = explode.parents + explode.rejected_documents + Σ explode.skipped_documents
//                    explode.items = rows + explode.rejected_items + Σ explode.skipped_items
//                    rejected = explode.rejected_documents + explode.rejected_items
//                    skipped  = explode.skipped_documents ∪ explode.skipped_items (reason names differ)
//   every strategy:  keys.records + unkeyed = documents + absent (older runs, explode only: keys.records = parents)
//   dedupe:          contrib.records = rows + dedupe.superseded
//   every strategy:  csv.records = rows, rejects.records = rejected
// transformIdentityErrors() checks them; `etl verify` and the tests call it.
import type { FileRecord, StageSectionBase } from './manifest.ts';

export interface ExplodeFigures {
  /** Parent documents staged in the keys file: their links are replaced by this run's rows. */
  parents: number;
  /** Array items of those parents, over every array of the table. */
  items: number;
  /** Documents refused whole (no keys row, so their current links stay untouched), e.g. `not_an_array`. */
  rejected_documents: number;
  /** Items refused (missing id, bad value): their parent still goes to the keys file. */
  rejected_items: number;
  /** Documents not turned into parents, by reason (e.g. `filtered`). */
  skipped_documents: Record<string, number>;
  /** Items not turned into rows, by reason (e.g. `duplicate_in_array`). */
  skipped_items: Record<string, number>;
}

export interface LiveKeysFigures extends FileRecord {
  /** The key column (the file's header). */
  column: string;
  /** The ids file it was derived from (relative to the run), and its lines. */
  source: string;
  ids: number;
  /** Ids left out by the table's filter (not live for this table). */
  filtered: number;
  /** Ids the key column's type refused (their rows could never have been loaded). */
  refused: number;
}

export interface TransformTableRecord {
  collection: string;
  strategy: 'upsert' | 'explode' | 'dedupe';
  /** Documents of the collection read for this table (every line of the extract file). */
  documents: number;
  /** Rows written to the CSV. */
  rows: number;
  /** Lines written to the rejects file (one per refused row, item or document). */
  rejected: number;
  /** Why documents or items were not turned into rows, and how many. */
  skipped: Record<string, number>;
  /** Values changed on purpose, per column and kind (only `nul_stripped` under nul_character: strip). */
  altered: Record<string, Record<string, number>>;
  csv: FileRecord;
  /**
   * The documents whose rows this run replaces (the scope): every document offered to the table
   * whose `_id` converts, rows written or not. Header: the column holding the document `_id`
   * (dedupe: the contributions' document column). Older runs: delete-and-insert tables only.
   */
  keys: FileRecord | null;
  rejects: FileRecord;
  /** Documents whose `_id` the key column cannot hold (not in the keys file: the run cannot replace what they own). */
  unkeyed?: number;
  /**
   * Repair runs: documents the run asked for that the collection does not hold (deleted, or never
   * there). Not among `documents`; each is named in the keys file so load removes what it owned.
   */
  absent?: number;
  /**
   * Documents extract refused (extract/<collection>.rejects.ndjson) whose `_id` it could read: not
   * among `documents`, each named in the keys file so load removes what it owned, on an incremental
   * run as a complete read does (absent when the collection has no extract rejects).
   */
  extract_rejected?: number;
  /** Repair runs, dedupe tables: transform/<table>.recompute.csv, keys load recomputes whatever the run stages. */
  recompute?: FileRecord;
  /** Dedupe tables: transform/<table>.contrib.csv, the row each staged document contributes (its `_id` first). */
  contrib?: FileRecord;
  /**
   * The collection was read without a date filter: the run holds every document the table may hold,
   * so load removes the rows it does not stage (a full read is a delete propagation of its own).
   */
  complete?: boolean;
  /**
   * The documents the extract asked for because each claims a key another document claims too
   * (etl_claims identities, the extract record's `claimants`): load forgets the claims of those the
   * keys file does not name, which are gone, so the contest ends and the other document's row lands.
   */
  claimants?: string[];
  /** Explode tables only. */
  explode?: ExplodeFigures;
  /**
   * Tables with propagate_deletes whose collection's ids the extract staged: transform/<table>.live.csv,
   * the keys of every row the table may hold now (load deletes the others). Written by transform/live-keys.ts.
   */
  live?: LiveKeysFigures;
  /** Dedupe tables only: distinct keys (= rows) and documents that lost to a later one of the same key. */
  dedupe?: { key: string[]; latest_by: string; superseded: number };
}

export interface TransformSection extends StageSectionBase {
  /** sha256 of the pipeline.yaml this transform used. */
  pipeline_sha256: string;
  /** True when it differs from the run's (extract's) pipeline and --allow-pipeline-change was given. */
  pipeline_changed?: boolean;
  /** Tables asked for with --tables (null: the whole pipeline). */
  tables_requested?: string[] | null;
  /**
   * `--tables` re-transforming a subset of a run transformed before with the same pipeline.yaml: the
   * tables whose records (and files) are the earlier transform's, kept (transform/earlier-transform.ts).
   */
  tables_kept?: string[];
  /** Tables of the pipeline whose collection the run does not hold (not transformed). */
  not_extracted?: string[];
  tables: Record<string, TransformTableRecord>;
}

const sum = (counts: Readonly<Record<string, number>>): number => Object.values(counts).reduce((a, b) => a + b, 0);

/** The identities above that do not hold for a table record (empty when the counts reconcile). */
export function transformIdentityErrors(table: string, r: TransformTableRecord): string[] {
  const errors: string[] = [];
  const expect = (ok: boolean, what: string) => {
    if (!ok) errors.push(`${table}: ${what}`);
  };
  expect(r.csv.records === r.rows, `csv records ${r.csv.records} ≠ rows ${r.rows}`);
  expect(r.rejects.records === r.rejected, `rejects records ${r.rejects.records} ≠ rejected ${r.rejected}`);
  if (r.strategy === 'explode' && r.explode) {
    const e = r.explode;
    expect(
      r.documents === e.parents + e.rejected_documents + sum(e.skipped_documents),
      `documents ${r.documents} ≠ parents ${e.parents} + rejected documents ${e.rejected_documents} + skipped documents ${sum(e.skipped_documents)}`,
    );
    expect(
      e.items === r.rows + e.rejected_items + sum(e.skipped_items),
      `items ${e.items} ≠ rows ${r.rows} + rejected items ${e.rejected_items} + skipped items ${sum(e.skipped_items)}`,
    );
    expect(r.rejected === e.rejected_documents + e.rejected_items, `rejected ${r.rejected} ≠ rejected documents + rejected items`);
    expect(sum(r.skipped) === sum(e.skipped_documents) + sum(e.skipped_items), `skipped ≠ skipped documents + skipped items`);
    // Runs before the keys file named every document: it named the parents only.
    if (r.keys && r.unkeyed === undefined) expect(r.keys.records === e.parents, `keys records ${r.keys.records} ≠ parents ${e.parents}`);
  } else {
    expect(r.documents === r.rows + r.rejected + sum(r.skipped), `documents ${r.documents} ≠ rows ${r.rows} + rejected ${r.rejected} + skipped ${sum(r.skipped)}`);
  }
  const absent = r.absent ?? 0;
  const refused = r.extract_rejected ?? 0;
  if (r.keys && r.unkeyed !== undefined) {
    expect(
      r.keys.records + r.unkeyed === r.documents + absent + refused,
      `keys records ${r.keys.records} + unkeyed ${r.unkeyed} ≠ documents ${r.documents} + absent ${absent} + rejected by extract ${refused}`,
    );
  }
  if (r.contrib && r.dedupe) expect(r.contrib.records === r.rows + r.dedupe.superseded, `contrib records ${r.contrib.records} ≠ rows ${r.rows} + superseded ${r.dedupe.superseded}`);
  return errors;
}
