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
import { QuotedNewlineDetector } from './csv-lines.ts';
import { csvToBinaryCopy, type BinaryColumn } from './binary-copy.ts';

export interface CopyFigures {
  /** Rows COPY reported (CommandComplete). */
  readonly rowCount: number;
  readonly bytes: number;
  /** sha256 of the bytes sent, taken as they streamed (compared with the manifest's). */
  readonly sha256: string;
  /** A quoted value holds a newline: CSV records and physical lines are numbered differently. */
  readonly multiline: boolean;
}

/**
 * COPYs `file` with `copySql`, its bytes hashed as they stream; with `binary`, each record goes as
 * PostgreSQL's binary tuple (load/binary-copy.ts), the hash still of the file's own bytes.
 */
export async function copyFileInto(client: pg.Client, file: string, copySql: string, signal?: AbortSignal, binary: readonly BinaryColumn[] | null = null): Promise<CopyFigures> {
  const hash = createHash('sha256');
  let bytes = 0;
  const quotes = new QuotedNewlineDetector();
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      quotes.scan(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  const copy = client.query(copyFrom(copySql));
  const encode = binary === null ? [] : [csvToBinaryCopy(binary)];
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), tap, ...encode, copy, ...(signal ? [{ signal }] : []));
  return { rowCount: copy.rowCount, bytes, sha256: hash.digest('hex'), multiline: quotes.multiline };
}

export interface KeysScan {
  readonly bytes: number;
  readonly sha256: string;
  /** Data records, when the file is plain enough to count them by its newlines (else null). */
  readonly records: number | null;
  /** Every data record ends with an empty field (no quote anywhere, every line after the header ends in `,`). */
  readonly lastFieldEmpty: boolean;
}

/**
 * Reads a keys file without sending it anywhere: its checksum, and whether any document has an
 * `_id` that is not its key's text (the second field) — cheaper than a COPY of a million lines
 * when the answer is no, which is what a complete read with no claim kept needs to know.
 */
export async function scanKeysFile(file: string, signal?: AbortSignal): Promise<KeysScan> {
  const hash = createHash('sha256');
  let bytes = 0;
  let newlines = 0;
  let emptyEnds = 0;
  let quoted = false;
  let previous = -1;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20, signal }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
    if (!quoted && chunk.indexOf(0x22) !== -1) quoted = true;
    for (let n = chunk.indexOf(0x0a); n !== -1; n = chunk.indexOf(0x0a, n + 1)) {
      newlines += 1;
      if ((n > 0 ? chunk[n - 1] : previous) === 0x2c) emptyEnds += 1;
    }
    previous = chunk[chunk.length - 1] ?? previous;
  }
  const plain = !quoted && (bytes === 0 || previous === 0x0a);
  const records = plain ? Math.max(0, newlines - 1) : null;
  return { bytes, sha256: hash.digest('hex'), records, lastFieldEmpty: plain && emptyEnds === records };
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
