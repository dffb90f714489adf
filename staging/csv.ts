// The CSV codec of staged tables, shared by transform (writer) and load/audit (readers).
// Conventions that PostgreSQL's COPY … (FORMAT csv) reads back exactly:
// - a cell is `string | null`; null is an empty unquoted field (COPY's NULL), '' is `""`;
// - a cell that is exactly `\.` is quoted, or COPY would take it for the end-of-data marker;
// - a cell holding a carriage return is quoted (csv-stringify quotes only newlines by itself).
import { stringify, type Stringifier } from 'csv-stringify';
import { parse, type Parser } from 'csv-parse';

export type Cell = string | null;

/** A Transform from row arrays (cells in `columns` order) to CSV text, header first. */
export function csvWriter(columns: readonly string[]): Stringifier {
  return stringify({
    header: true,
    columns: columns as string[],
    // Only a real '' matches /^$/ (null never reaches the matcher), so NULL stays an unquoted empty field.
    // A bare carriage return must be quoted too: COPY refuses an unquoted one.
    quoted_match: [/^$/, /^\\\.$/, /\r/],
    eof: true,
    record_delimiter: '\n',
  });
}

/** The COPY options matching csvWriter. */
export const COPY_CSV_OPTIONS = "(FORMAT csv, HEADER true)";

/** A Transform from CSV text to row arrays, keeping null (unquoted empty) apart from '' (quoted). */
export function csvReader(): Parser {
  return parse({
    // Header handled by the caller (first record), so the rows stay plain arrays.
    columns: false,
    relax_quotes: false,
    // An unquoted empty field is NULL; a quoted one is ''. csv-parse tells them apart in cast().
    cast: (value, context) => (value === '' && !context.quoting ? null : value),
  }) as Parser;
}

/** Formats for cells (the text PostgreSQL reads for each type). */
export function timestampCell(d: Date): string {
  // UTC wall time with milliseconds, no zone: TIMESTAMP columns hold UTC.
  return d.toISOString().replace('T', ' ').replace('Z', '');
}
