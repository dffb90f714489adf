// COPY of a staged CSV into a temp table. pg-copy-streams' COPY FROM is a plain Writable: its
// 'finish' is held back until PostgreSQL's ReadyForQuery, so once the awaited pipeline() resolves
// the rows are in the table and the connection is free (no 'end' to wait for). If anything fails
// on the way (the file, the signal, the server), pipeline() destroys the COPY stream, which sends
// CopyFail: the server aborts the COPY and nothing of it stays.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { parse as parseCsvSync } from 'csv-parse/sync';
import { CsvRecordCounter, QuotedNewlineDetector } from './csv-lines.ts';

export interface CopyFigures {
  /** Rows COPY reported (CommandComplete). */
  readonly rowCount: number;
  readonly bytes: number;
  /** sha256 of the bytes sent, taken as they streamed (compared with the manifest's). */
  readonly sha256: string;
  /** A quoted value holds a newline: CSV records and physical lines are numbered differently. */
  readonly multiline: boolean;
  /** Data records of the file, counted as it streamed (only when asked: see copyFileInto). */
  readonly records: number | null;
}

/** `countRecords`: count the file's records as they stream (a COPY … WHERE reports the rows it kept). */
export async function copyFileInto(client: pg.Client, file: string, copySql: string, signal?: AbortSignal, countRecords = false): Promise<CopyFigures> {
  const hash = createHash('sha256');
  let bytes = 0;
  const quotes = new QuotedNewlineDetector();
  const counter = countRecords ? new CsvRecordCounter() : null;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      quotes.scan(chunk);
      counter?.scan(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  const copy = client.query(copyFrom(copySql));
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), tap, copy, ...(signal ? [{ signal }] : []));
  const records = counter ? Math.max(0, counter.records - 1) : null;
  return { rowCount: copy.rowCount, bytes, sha256: hash.digest('hex'), multiline: quotes.multiline, records };
}

/** The header record of a staged CSV (the column names), read from the file's first bytes. */
export async function readCsvHeader(file: string): Promise<string[]> {
  const handle = await open(file, 'r');
  try {
    const size = 1 << 16;
    const buf = Buffer.alloc(size);
    const { bytesRead } = await handle.read(buf, 0, size, 0);
    const text = buf.subarray(0, bytesRead).toString('utf8');
    const rows = parseCsvSync(text, { to_line: 1, relax_column_count: true }) as string[][];
    return rows[0] ?? [];
  } finally {
    await handle.close();
  }
}
