// Every code an EtlError can carry: a closed set, so a script reading `--json` errors (or a test)
// can rely on the list, and a new failure needs a new entry here rather than a new string somewhere.
// Grouped by where the failure is found; the code says what failed, the message says where.

const ERROR_CODES = [
  // command line (exit 2)
  'bad_arguments',
  'bad_allow',
  'bad_keep',
  'bad_lock_timeout',
  'bad_older_than',
  'bad_repair',
  'bad_since',
  'unknown_command',
  'unknown_table',
  'unknown_collection',
  'confirmation_needed',
  'confirmation_required',
  'cancelled',
  'interrupted',
  // configuration (pipeline.yaml, environment, .env; exit 2)
  'config_invalid',
  // connections
  'mongo_unreachable',
  'postgres_unreachable',
  'remote_postgres_unreachable',
  'ssh_auth_failed',
  'ssh_closed',
  'ssh_exec_failed',
  'ssh_failed',
  'ssh_forward_failed',
  'ssh_host_key_changed',
  'ssh_host_key_unknown',
  'ssh_known_hosts_unreadable',
  'ssh_timeout',
  'ssh_unreachable',
  // the source (MongoDB, a mongodump output)
  'dump_ambiguous',
  'dump_corrupt',
  'dump_empty',
  'dump_not_found',
  'dump_unknown_database',
  'dump_unreadable',
  'mongo_bad_document',
  'mongo_connection_lost',
  'mongo_read_failed',
  'mongo_unknown_database',
  'repair_needs_live_source',
  'watermarks_unavailable',
  // staged runs
  'bad_archive',
  'bad_latest',
  'bad_manifest',
  'bad_name',
  'bad_ndjson',
  'bad_run_id',
  'checksum_missing',
  'damaged_run',
  'disk_full',
  'extract_mismatch',
  'live_keys_mismatch',
  'live_keys_unsupported',
  'missing_extract_file',
  'missing_file',
  'ndjson_line_count',
  'no_manifest',
  'no_run',
  'not_extracted',
  'pipeline_changed',
  'pipeline_mismatch',
  'run_changed',
  'secret_in_run',
  'stage_not_done',
  'stage_running',
  'staged_file_changed',
  'staged_file_missing',
  'staging_not_writable',
  'staging_unreadable',
  'table_not_staged',
  'write_failed',
  // load and schema (PostgreSQL)
  'columns_mismatch',
  'contributions_missing',
  'contributions_not_staged',
  'database_not_utf8',
  'database_read_only',
  'delete_all_refused',
  'load_failed',
  'load_lock_timeout',
  'load_locked',
  'postgres_connection_lost',
  'row_count_mismatch',
  'run_older_than_loaded',
  'schema_changed_meanwhile',
  'schema_create_failed',
  'schema_data_conflict',
  // inspection
  'diff_failed',
  // refresh (copies of the remote databases)
  'mongodump_failed',
  'mongodump_not_archive',
  'mongodump_stream_failed',
  'mongorestore_failed',
  'mongorestore_missing',
  'pg_dump_failed',
  'pg_dump_unavailable',
  'pg_restore_failed',
  'tool_failed',
  // sample data
  'sample_count_mismatch',
  'sample_insert_incomplete',
  'sample_no_destination',
  'sample_target_not_empty',
  'sample_two_destinations',
] as const;

/**
 * What PostgreSQL refused, by its SQLSTATE (`pg_23505`, `pg_22001`; `pg_error` when pg gave none):
 * the SQLSTATE list is PostgreSQL's own closed set, so it is not repeated here.
 */
export type PgErrorCode = `pg_${string}`;

export type ErrorCode = (typeof ERROR_CODES)[number] | PgErrorCode;

/** The SQLSTATE an error from PostgreSQL carries, as an error code. */
export function pgErrorCode(sqlState: string | undefined): PgErrorCode {
  return `pg_${sqlState ?? 'error'}`;
}

/** What to do when PostgreSQL refused for want of a privilege (SQLSTATE 42501), whatever the command. */
export const PRIVILEGE_HINT =
  'the PostgreSQL user lacks a privilege etl needs: it must own the tables or hold SELECT, INSERT, UPDATE, DELETE and TRUNCATE on them and CREATE on the schema (GRANT … TO that user), or connect as the user that ran `etl schema`';

/** What to do when PostgreSQL refused a write because the transaction is read-only (SQLSTATE 25006). */
const READ_ONLY_HINT =
  'the database accepts no writes: point DATABASE_URL (or --database-url) at the primary if it names a standby (a read replica); if the database or the role makes transactions read-only by default, turn that off for the user etl connects as: ALTER ROLE … SET default_transaction_read_only = off';

/**
 * What to do when PostgreSQL refused for want of access: a privilege (PRIVILEGE_HINT), or any write
 * at all (the database accepts no writes: READ_ONLY_HINT); else null.
 */
export function accessHint(cause: unknown): string | null {
  const code = (cause as { code?: unknown } | null)?.code;
  if (code === '42501') return PRIVILEGE_HINT;
  if (code === '25006') return READ_ONLY_HINT;
  return null;
}
