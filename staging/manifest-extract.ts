// The extract section of manifest.json (owned by the extract stage).
import type { FileRecord, StageSectionBase } from './manifest.ts';

export interface ExtractCollectionRecord extends FileRecord {
  /** The MongoDB filter used, as canonical Extended JSON ({} = every document). */
  filter: unknown;
  /**
   * Documents with creation_date or update_date >= from were read; from null = full read.
   * next: the watermark a load of this run may store for the collection's tables.
   * next_basis: how `next` was found — "server_clock" (the live server's clock at the extract's
   * start, minus the margin), "dump_dates" (latest creation/update date seen in the dump, capped at
   * this machine's clock, minus the margin) or "dump_no_dates" (no date in the dump: the epoch).
   * Absent in a repair run (`requested`): it read chosen documents, not a date window, so a load of
   * it moves no watermark.
   */
  watermark?: { from: string | null; next: string; next_basis?: 'server_clock' | 'dump_dates' | 'dump_no_dates' };
  /**
   * A repair run (`etl repair`): the collection was read by `_id`, exactly the documents listed in
   * this file (extract/<collection>.requested.ndjson, one `{"_id": …, "found": true|false}` a line,
   * in `_id` order). Transform names the ones not found in each table's keys file, so load removes
   * what they owned.
   */
  requested?: ExtractRequestedRecord;
  /** Documents written (equals records). */
  documents: number;
  /**
   * Documents read from the source: scanned = documents + rejected + unmatched (dumps apply the
   * query on this side; a live server applies it itself, so unmatched is 0 there).
   */
  scanned?: number;
  /** Documents extract could not stage, each a line of `rejects` (missing_id, too_deep, invalid_utf8, invalid_id, invalid_bson, duplicate_field). */
  rejected?: number;
  /** rejected, per reason. */
  rejected_reasons?: Record<string, number>;
  /** extract/<collection>.rejects.ndjson: present when rejected > 0. */
  rejects?: FileRecord;
  /** Documents of a dump the query left out. */
  unmatched?: number;
  /** Staged documents whose creation_date and update_date are both missing or not dates (read on every incremental run). */
  undated?: UndatedCensus;
  /** How the file came to be in _id order: server sort, dump already in order, or external sort. */
  order?: 'server' | 'dump' | 'sorted';
  /** Reconnections after a dropped cursor (live). */
  retries?: number;
  /** Things the user should know (a missing collection…). */
  warnings?: string[];
  started_at: string;
  ended_at: string;
  /** Tables this collection feeds in this run. */
  tables: string[];
  /** Delete propagation: the collection's whole `_id` set (extract/<collection>.ids.ndjson). */
  ids?: ExtractIdsRecord;
  /**
   * An incremental read that also asked for these documents (etl_claims identities: 24 hex for an
   * ObjectId, else the `_id`'s canonical Extended JSON), because each claims a key another document
   * claims too; one that no table's keys file names was not found: it is gone (load/claims.ts).
   */
  claimants?: string[];
  /**
   * An incremental read that also asked for this many documents whose rows a load removed because
   * they were gone (etl_gone): each is read again whatever its dates, until it comes back (restored
   * from a backup with its old `_id` and dates). The `_id`s are in `filter`.
   */
  gone_asked?: number;
}

/** What a repair run asked of a collection (extract.collections[c].requested). */
export interface ExtractRequestedRecord extends FileRecord {
  /** `_id`s asked for (= records). */
  ids: number;
  /** Of those, found in the collection (and staged in the NDJSON file, unless extract rejected them). */
  found: number;
  /** Not found: deleted since the last load, or never there. */
  absent: number;
}

/**
 * The run is a repair (`etl repair`, extract.repair): per collection the `_id`s it read, and per
 * dedupe table the keys load recomputes from their contributions whatever this run stages
 * (extract/<table>.recompute.csv, the key columns as PostgreSQL text; a key no document contributes
 * to any more leaves the table).
 */
export interface ExtractRepairRecord {
  requested: Record<string, number>;
  recompute: Record<string, ExtractRecomputeRecord>;
}

export interface ExtractRecomputeRecord extends FileRecord {
  /** The file's header: the table's dedupe key. */
  columns: string[];
}

/** Documents no watermark can place: how many, and per date field what it held (`missing`, or a $type alias: null, string…). */
export interface UndatedCensus {
  documents: number;
  fields: { creation_date: Record<string, number>; update_date: Record<string, number> };
}

/** What the manifest records of a collection's ids file (extract.collections[c].ids). */
export interface ExtractIdsRecord extends FileRecord {
  /** The query of the ids pass, canonical Extended JSON: the propagating tables' filters, no dates. */
  filter: unknown;
  /** Fields kept besides `_id`: those the tables' filters read (events' `__t` for menus). */
  fields: string[];
  /** Documents read (equals records; a dump may repeat an _id, which does no harm to a set). */
  documents: number;
  /** Documents read from the source before the client-side filter (dumps). */
  scanned: number;
  /** Documents whose `_id` or filter fields could not be read (not listed). */
  rejected?: number;
  /**
   * The listing is proved to hold every `_id` the filter matches: a dump read whole; live, the ids
   * came in strictly ascending order and there are at least as many as a count with the same
   * filter found both before and after the listing. False: no row may be deleted on its account;
   * `tables` is then empty and the tables it was for are in `withheld_tables`.
   */
  complete?: boolean;
  /** Live: countDocuments(filter) before and after the listing; null for a dump. */
  count_before?: number | null;
  count_after?: number | null;
  /** Why the listing is not proved complete. */
  incomplete_reason?: string;
  /** Tables whose deletes this listing would have carried, had it been proved complete. */
  withheld_tables?: string[];
  /** The tables whose live keys transform derives from this file. */
  tables: string[];
  started_at: string;
  ended_at: string;
}

/** The run-level record of delete propagation (extract.propagate_deletes). */
export interface ExtractPropagationRecord {
  /** --propagate-deletes was given. */
  flag: boolean;
  /** Tables of this extract whose deletes propagate (an ids file was staged for their collection). */
  tables: string[];
  /** Tables the flag could not cover (dedupe), with why. */
  unsupported: { table: string; reason: string }[];
}

export interface ExtractSection extends StageSectionBase {
  /** true when every collection was read in full. */
  full: boolean;
  /** Server clock at the start of the extract (the basis of the next watermark); null for a dump. */
  server_started_at: string | null;
  /** Tables this run was extracted for (a --tables subset, or every table). */
  tables?: string[];
  /** Every collection this run extracts: filled as each one completes. */
  collections: Record<string, ExtractCollectionRecord>;
  warnings?: string[];
  /** Present when deletes propagate for some table of this run. */
  propagate_deletes?: ExtractPropagationRecord | null;
  /** Present in a repair run (`etl repair`): it moves no watermark and is never complete. */
  repair?: ExtractRepairRecord;
  /**
   * Per table of this run: the fingerprint of the resolved mapping the extract planned with
   * (model/fingerprint.ts), whether the read replaces every row the table can hold (full_read: no
   * date filter, or a never-loaded table's read from its threshold; model/read-plan.ts), how the mapping compared with the stored one (unchanged, changed, unrecorded, new,
   * unknown when not read) and the stored fingerprint. Load stores `fingerprint` with the watermark
   * (model/fingerprint.ts fingerprintToStore). Absent in runs made before fingerprints.
   */
  mappings?: Record<string, ExtractMappingRecord>;
}

export interface ExtractMappingRecord {
  fingerprint: string;
  full_read: boolean;
  mapping: 'unchanged' | 'changed' | 'unrecorded' | 'partial' | 'new' | 'unknown';
  stored_fingerprint: string | null;
}
