// The vocabulary of pipeline.yaml as a field spec: every key the file may hold, its kind, whether
// it is required. The validator walks the YAML nodes against it (model/field-spec.ts); keeping the
// vocabulary as data means an unknown key can always list what was expected.
import type { DocumentFilter } from './types.ts';
import type { FieldSpec, ValueSpec } from './field-spec.ts';
import { decodeFilter } from './filter.ts';

const str: FieldSpec = { value: { kind: 'string' } };
const bool: FieldSpec = { value: { kind: 'boolean' } };

const COLUMN_SPEC = {
  kind: 'object',
  fields: {
    name: { value: { kind: 'string' }, required: true },
    sql_type: { value: { kind: 'string' }, required: true },
    nullable: bool,
    foreign_key: str,
    on_missing: { value: { kind: 'string', oneOf: ['reject', 'set_null'] } },
    primary_key: bool,
  },
} as const satisfies ValueSpec;

const ARRAY_SPEC = {
  kind: 'object',
  fields: {
    field: { value: { kind: 'string' }, required: true },
    item_column: { value: { kind: 'string' }, required: true },
    item_id_key: str,
    item_date_key: str,
    constants: { value: { kind: 'map', values: { kind: 'scalar' } } },
  },
} as const satisfies ValueSpec;

const MAPPINGS: FieldSpec = { value: { kind: 'map', values: { kind: 'string' } } };
const COLUMN_LIST: FieldSpec = { value: { kind: 'list', items: COLUMN_SPEC } };

const TABLE_SPEC = {
  kind: 'object',
  fields: {
    mongo_collection: str,
    include_base: bool,
    additional_columns: COLUMN_LIST,
    columns: COLUMN_LIST,
    additional_mappings: MAPPINGS,
    explicit_mappings: MAPPINGS,
    export_order: { value: { kind: 'integer', min: 0 } },
    unique_constraints: { value: { kind: 'list', items: { kind: 'list', items: { kind: 'string' }, nonEmpty: true } } },
    filter: {
      value: { kind: 'custom', expected: 'a filter map', decode: (node, path, ctx) => decodeFilter(node, path, ctx) },
      nullable: true,
    },
    force_reimport: bool,
    truncate_before_import: bool,
    date_threshold: { value: { kind: 'date' }, nullable: true },
    propagate_deletes: bool,
    strategy: { value: { kind: 'string', oneOf: ['upsert', 'explode', 'dedupe'] } },
    parent_column: str,
    merge: { value: { kind: 'string', oneOf: ['delete_and_insert', 'upsert'] } },
    arrays: { value: { kind: 'list', items: ARRAY_SPEC, nonEmpty: true } },
    dedupe_key: { value: { kind: 'list', items: { kind: 'string' }, nonEmpty: true } },
    latest_by: str,
  },
} as const satisfies ValueSpec;

const SETTINGS_SPEC = {
  kind: 'object',
  fields: {
    timezone: str,
    batch_size: { value: { kind: 'integer', min: 1, max: 1_000_000 } },
    date_threshold: { value: { kind: 'date' }, nullable: true },
    // A year at most: a margin is minutes (writes in flight, clock skew); far past a year the next
    // watermark is no date at all.
    watermark_margin_seconds: { value: { kind: 'integer', min: 0, max: 31_536_000 } },
    nul_character: { value: { kind: 'string', oneOf: ['reject', 'strip'] } },
  },
} as const satisfies ValueSpec;

export const PIPELINE_SPEC = {
  kind: 'object',
  fields: {
    settings: { value: SETTINGS_SPEC },
    tables: { value: { kind: 'map', values: TABLE_SPEC }, required: true },
  },
} as const satisfies ValueSpec;

// What the walker hands back for each spec: only the keys whose values passed are present; a list
// item or map value that failed is `unknown` (the INVALID marker), skipped by the resolver.

export interface RawColumn {
  readonly name?: string;
  readonly sql_type?: string;
  readonly nullable?: boolean;
  readonly foreign_key?: string;
  readonly on_missing?: 'reject' | 'set_null';
  readonly primary_key?: boolean;
}

export interface RawArray {
  readonly field?: string;
  readonly item_column?: string;
  readonly item_id_key?: string;
  readonly item_date_key?: string;
  readonly constants?: ReadonlyMap<string, unknown>;
}

export interface RawTable {
  readonly mongo_collection?: string;
  readonly include_base?: boolean;
  readonly additional_columns?: readonly unknown[];
  readonly columns?: readonly unknown[];
  readonly additional_mappings?: ReadonlyMap<string, unknown>;
  readonly explicit_mappings?: ReadonlyMap<string, unknown>;
  readonly export_order?: number;
  readonly unique_constraints?: readonly unknown[];
  readonly filter?: DocumentFilter | null;
  readonly force_reimport?: boolean;
  readonly truncate_before_import?: boolean;
  readonly date_threshold?: Date | null;
  readonly propagate_deletes?: boolean;
  readonly strategy?: 'upsert' | 'explode' | 'dedupe';
  readonly parent_column?: string;
  readonly merge?: 'delete_and_insert' | 'upsert';
  readonly arrays?: readonly unknown[];
  readonly dedupe_key?: readonly unknown[];
  readonly latest_by?: string;
}

export interface RawSettings {
  readonly timezone?: string;
  readonly batch_size?: number;
  readonly date_threshold?: Date | null;
  readonly watermark_margin_seconds?: number;
  readonly nul_character?: 'reject' | 'strip';
}

export interface RawPipeline {
  readonly settings?: RawSettings;
  readonly tables?: ReadonlyMap<string, unknown>;
}
