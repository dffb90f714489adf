// A seeded, randomized property test of extract from a mongodump (issue 13: "no document aborts a
// run; no two documents silently become one"). A small valid dump of three collections is damaged
// case by case (bytes flipped, type bytes, string and document lengths, terminators, keys, deep
// nesting, hand-made odd documents, truncation, garbage, duplicates, a renamed archive segment;
// through a .bson, a .bson.gz, a gzip stream cut short or followed by bytes, and an --archive file),
// then extracted (in-process; the first cases of each outcome through `etl extract` too, some with
// --propagate-deletes). Each case must end in exactly one of:
//   - the run goes on: every document the file's framing still delimits is staged, rejected (its
//     offset, position and a listed reason in the rejects file) or left out by the query; the
//     manifest's counts reconcile; every staged line is JSON with an _id; untouched documents stage
//     their unmutated line byte for byte; a damaged document bson reads stages what `EJSON.stringify`
//     writes for it, and none bson reads is rejected as invalid_bson; the ids pass lists a rejected
//     document's _id or does not call its listing complete; transform (and for a few cases load into
//     PostgreSQL) then finish on what was staged, their counts reconciling;
//   - the run stops, only where the framing is broken: a document length that does not frame, or a
//     document whose top-level fields do not fill its length (its length may then cover the next
//     documents), or an undeclared archive namespace; with an EtlError naming the file and that byte
//     offset, no stack, no "undefined" / "NaN" / "[object Object]"; no .partial file left.
// Never an unhandled exception, a TypeError/RangeError, or a hang (30 s a case).
//
//   DUMP_FUZZ_SEED=<n>   the seed (default: random, printed with every failure and its replay command)
//   DUMP_FUZZ_CASES=<n>  how many cases (default 150: 15 to 30 s on a shared 2-core machine)
//   DUMP_FUZZ_ONLY=<i>   replay case i of the seed alone
//   DUMP_FUZZ_LOADS=<n>  how many of the cases that extract also load into PostgreSQL (default 4)
//   DUMP_FUZZ_TRACE=1    where the fuzz is, on stderr (a case that never ends, or takes all memory)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { deserialize, EJSON, type Document } from 'bson';
import { EtlError } from '../../errors/etl-error.ts';
import { matchesQuery } from '../../extract/document-match.ts';
import { runExtract, type ExtractReport } from '../../extract/index.ts';
import { runLoad } from '../../load/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel } from '../../model/types.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { readManifest } from '../../staging/manifest.ts';
import type { ExtractCollectionRecord } from '../../staging/manifest-extract.ts';
import { BSON_READ_OPTIONS } from '../../staging/ndjson.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { runTransform } from '../../transform/index.ts';
import { etl, STACK_LINE } from '../harness/cli.ts';
import { startServers, type Servers } from '../harness/index.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { archiveBytes, bsonBytes, documentOf, elementBytes, makeEvents, makeRecipes, makeUsers, nestedElement, objectIdAt, rawDateElement, rawStringElement } from '../extract/dump-writer.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, '../extract/fixtures/pipeline.yaml');
const SEED = process.env.DUMP_FUZZ_SEED ? Number(process.env.DUMP_FUZZ_SEED) >>> 0 : Math.floor(Math.random() * 0x100000000);
const CASES = Number(process.env.DUMP_FUZZ_CASES ?? 150);
const ONLY = process.env.DUMP_FUZZ_ONLY === undefined ? null : Number(process.env.DUMP_FUZZ_ONLY);
const LOADS = Number(process.env.DUMP_FUZZ_LOADS ?? 4);
/** A case taking longer than this is a hang. */
const CASE_TIMEOUT_MS = 30_000;
/** The extract rejects reasons the README lists. */
const REASONS = new Set(['missing_id', 'too_deep', 'invalid_utf8', 'invalid_id', 'invalid_bson', 'duplicate_field']);
const MAX_DOCUMENT_BYTES = 48 * 1024 * 1024;
const DB = 'appdb';

const replay = (i: number) => `DUMP_FUZZ_SEED=${SEED} DUMP_FUZZ_ONLY=${i} node --import tsx --test --test-timeout=600000 test/hostile/dump-fuzz.test.ts`;

// ── The clean dump ──────────────────────────────────────────────────────────────────────────────

type Collection = 'users' | 'events' | 'recipes';
const COLLECTIONS: readonly Collection[] = ['users', 'events', 'recipes'];

function cleanDocuments(): Record<Collection, Buffer[]> {
  const docs = { users: makeUsers(24), events: makeEvents(12), recipes: makeRecipes(12) };
  return {
    users: docs.users.map((d) => bsonBytes([d])),
    events: docs.events.map((d) => bsonBytes([d])),
    recipes: docs.recipes.map((d) => bsonBytes([d])),
  };
}

// ── A walk of valid BSON (the clean documents), to aim mutations at elements ──────────────────────

interface Element {
  /** 0: a field of the document itself. */
  readonly depth: number;
  readonly typeAt: number;
  readonly type: number;
  readonly nameEnd: number;
  readonly valueAt: number;
  readonly valueEnd: number;
}

/** Every element of a document, nested ones too, in byte order; on damaged bytes (a second mutation), those before the damage. */
function elementsOf(doc: Buffer, at = 0, out: Element[] = [], depth = 0): Element[] {
  if (at + 4 > doc.length) return out;
  const limit = Math.min(at + doc.readInt32LE(at), doc.length) - 1;
  let i = at + 4;
  while (i < limit && doc[i] !== 0) {
    const type = doc[i]!;
    const nameEnd = doc.indexOf(0, i + 1);
    const end = nameEnd === -1 || nameEnd >= limit ? null : checkedValueEnd(doc, type, nameEnd + 1, limit);
    if (end === null) break;
    out.push({ depth, typeAt: i, type, nameEnd, valueAt: nameEnd + 1, valueEnd: end });
    if (type === 0x03 || type === 0x04) elementsOf(doc, nameEnd + 1, out, depth + 1);
    i = end;
  }
  return out;
}

// ── Mutations ───────────────────────────────────────────────────────────────────────────────────

/** The pieces of a collection's file: each a document's bytes and, when untouched, its clean index. */
interface Piece {
  bytes: Buffer;
  clean: number | null;
}

type DocMutation = (doc: Buffer, rng: Rng) => Buffer | null;

const interesting = (rng: Rng, around: number): number =>
  rng.pick([0, 1, -1, 4, 5, around - 1, around + 1, around + rng.int(2, 64), -around, 0x7fffffff, -0x80000000, rng.int(-1000, 1000), rng.int(0, 0xffffff)]);

function pickElement(doc: Buffer, rng: Rng, types?: readonly number[]): Element | null {
  const all = elementsOf(doc).filter((e) => !types || types.includes(e.type));
  // Half the time inside a value: damage there is a reject, damage to the document's own fields a stop.
  const nested = all.filter((e) => e.depth > 0);
  if (nested.length && rng.chance(0.5)) return rng.pick(nested);
  return all.length ? rng.pick(all) : null;
}

const DOC_MUTATIONS: Record<string, DocMutation> = {
  flipBytes(doc, rng) {
    const out = Buffer.from(doc);
    for (let k = rng.int(1, 4); k > 0; k -= 1) out[rng.int(4, out.length - 2)] = rng.chance(0.5) ? out[rng.int(4, out.length - 2)]! ^ (1 << rng.below(8)) : rng.below(256);
    return out;
  },
  typeByte(doc, rng) {
    const e = pickElement(doc, rng);
    if (!e) return null;
    const out = Buffer.from(doc);
    out[e.typeAt] = rng.chance(0.7) ? rng.pick([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x7f, 0xff]) : rng.below(256);
    return out;
  },
  stringLength(doc, rng) {
    const e = pickElement(doc, rng, [0x02]);
    if (!e) return null;
    const out = Buffer.from(doc);
    out.writeInt32LE(interesting(rng, doc.readInt32LE(e.valueAt)) | 0, e.valueAt);
    return out;
  },
  stringTerminator(doc, rng) {
    const e = pickElement(doc, rng, [0x02]);
    if (!e) return null;
    const out = Buffer.from(doc);
    out[e.valueEnd - 1] = rng.pick([0x41, 0xff, 0x22, 0x0a]);
    return out;
  },
  nestedLength(doc, rng) {
    const e = pickElement(doc, rng, [0x03, 0x04, 0x05]);
    if (!e) return null;
    const out = Buffer.from(doc);
    out.writeInt32LE(interesting(rng, doc.readInt32LE(e.valueAt)) | 0, e.valueAt);
    return out;
  },
  nestedTerminator(doc, rng) {
    const e = pickElement(doc, rng, [0x03, 0x04]);
    if (!e) return null;
    const out = Buffer.from(doc);
    out[e.valueEnd - 1] = rng.pick([0x01, 0x02, 0x10, 0x41]);
    return out;
  },
  documentLength(doc, rng) {
    const out = Buffer.from(doc);
    out.writeInt32LE(interesting(rng, doc.length) | 0, 0);
    return out;
  },
  documentTerminator(doc, rng) {
    const out = Buffer.from(doc);
    out[out.length - 1] = rng.pick([0x01, 0x41, 0xff]);
    return out;
  },
  keyWithoutNul(doc, rng) {
    const e = pickElement(doc, rng);
    if (!e) return null;
    const out = Buffer.from(doc);
    out[e.nameEnd] = rng.pick([0x41, 0x7a, 0xff]);
    return out;
  },
  keyInvalidUtf8(doc, rng) {
    const e = pickElement(doc, rng);
    if (!e || e.nameEnd === e.typeAt + 1) return null;
    const out = Buffer.from(doc);
    out[rng.int(e.typeAt + 1, e.nameEnd - 1)] = rng.pick([0xff, 0xc3, 0xed, 0x80]);
    return out;
  },
  keyDollar(doc, rng) {
    const e = pickElement(doc, rng);
    if (!e || e.nameEnd === e.typeAt + 1) return null;
    const out = Buffer.from(doc);
    out[e.typeAt + 1] = rng.pick([0x24, 0x2e, 0x30]);
    return out;
  },
  stringInvalidUtf8(doc, rng) {
    const e = pickElement(doc, rng, [0x02]);
    if (!e || e.valueEnd - 1 === e.valueAt + 4) return null;
    const out = Buffer.from(doc);
    out[rng.int(e.valueAt + 4, e.valueEnd - 2)] = rng.pick([0xff, 0xc3, 0xed, 0x80, 0x00]);
    return out;
  },
};

/** Whole documents made by hand: what a damaged or odd dump may hold in place of one. */
function handMade(rng: Rng, n: number): Buffer {
  const dates = [elementBytes('creation_date', new Date(Date.UTC(2024, 2, 1))), elementBytes('update_date', new Date(Date.UTC(2024, 2, 2)))];
  const id = elementBytes('_id', objectIdAt(n));
  const kind = rng.int(0, 7);
  switch (kind) {
    case 0: return documentOf([...dates, elementBytes('email', 'no id')]);
    case 1: return documentOf([]);
    case 2: return documentOf([id, nestedElement(rng.pick(['email', 'nested', 'junk']), rng.pick([99, 100, 101, 150, 5000, 100_000])), ...dates]);
    case 3: return documentOf([rawStringElement('_id', Buffer.from([0x61, 0xed, 0xa0, 0x80])), ...dates]);
    case 4: return documentOf([rawDateElement('_id', rng.pick([9_000_000_000_000_000_000n, -9_223_372_036_854_775_808n, 1n])), ...dates]);
    case 5: return documentOf([elementBytes('_id', rng.pick<unknown>([null, [1, 2], { a: 1 }, 'x', 7, true, /re/])), ...dates]);
    case 6: return documentOf([id, ...dates, rawDateElement('creation_date', 9_000_000_000_000_000_000n)]);
    default: return documentOf([id, id, ...dates]);
  }
}

interface Mutated {
  /** The collection's (decompressed) file bytes. */
  readonly bytes: Buffer;
  readonly kinds: string[];
}

function mutate(clean: readonly Buffer[], rng: Rng): Mutated {
  const pieces: Piece[] = clean.map((bytes, i) => ({ bytes, clean: i }));
  const kinds: string[] = [];
  const rounds = rng.chance(0.25) ? 2 : 1;
  let tail: ((bytes: Buffer) => Buffer) | null = null;
  for (let r = 0; r < rounds; r += 1) {
    const kind = rng.weighted<string>([...Object.keys(DOC_MUTATIONS).map((k) => [k, 3] as const), ['handMade', 3], ['duplicate', 2], ['truncateFile', 2], ['appendGarbage', 2]]);
    const at = rng.below(pieces.length);
    if (kind === 'duplicate') {
      pieces.splice(rng.below(pieces.length + 1), 0, { ...pieces[at]! });
    } else if (kind === 'handMade') {
      const doc = handMade(rng, 900 + r);
      if (rng.chance(0.5)) pieces.splice(at, 0, { bytes: doc, clean: null });
      else pieces[at] = { bytes: doc, clean: null };
    } else if (kind === 'truncateFile') {
      tail = (bytes) => bytes.subarray(0, rng.below(bytes.length));
    } else if (kind === 'appendGarbage') {
      const garbage = rng.chance(0.5) ? Buffer.from(Array.from({ length: rng.int(1, 40) }, () => rng.below(256))) : pieces[at]!.bytes.subarray(0, rng.int(1, pieces[at]!.bytes.length - 1));
      tail = (bytes) => Buffer.concat([bytes, garbage]);
    } else {
      const out = DOC_MUTATIONS[kind]!(pieces[at]!.bytes, rng);
      if (out === null) continue;
      pieces[at] = { bytes: out, clean: out.equals(clean[pieces[at]!.clean ?? -1] ?? Buffer.alloc(0)) ? pieces[at]!.clean : null };
    }
    kinds.push(kind);
  }
  const bytes = Buffer.concat(pieces.map((p) => p.bytes));
  return { bytes: tail ? tail(bytes) : bytes, kinds };
}

// ── The framing: which documents a reader can still delimit, and where it cannot go on ───────────

interface Framed {
  readonly offset: number;
  readonly bytes: Buffer;
}

interface Framing {
  /** The target collection's documents, in file order. */
  readonly docs: Framed[];
  /** Where a reader can find no further document (null: the file is framed to its end). */
  readonly broken: number | null;
}

/** One document at `at` as bson-reader frames it; null when its framing is broken. */
function frameAt(bytes: Buffer, at: number): Framed | null {
  if (bytes.length - at < 4) return null;
  const length = bytes.readInt32LE(at);
  if (length < 5 || length > MAX_DOCUMENT_BYTES || at + length > bytes.length || bytes[at + length - 1] !== 0) return null;
  return { offset: at, bytes: bytes.subarray(at, at + length) };
}

function frameFile(bytes: Buffer): Framing {
  const docs: Framed[] = [];
  for (let at = 0; at < bytes.length; ) {
    const doc = frameAt(bytes, at);
    if (doc === null) return { docs, broken: at };
    docs.push(doc);
    at += doc.bytes.length;
  }
  return { docs, broken: null };
}

/** An archive's documents of one collection, as dump-archive.ts walks it (magic, prelude, segments), and its segments' headers. */
function frameArchive(bytes: Buffer, collection: string): Framing & { headers: { offset: number; collection: string }[] } {
  const docs: Framed[] = [];
  const headers: { offset: number; collection: string }[] = [];
  const declared = new Set<string>();
  let at = 4;
  const next = (): Framed | 'end' | null => {
    if (bytes.length - at >= 4 && bytes.readInt32LE(at) === -1) {
      at += 4;
      return 'end';
    }
    const doc = frameAt(bytes, at);
    if (doc) at += doc.bytes.length;
    return doc;
  };
  const broken = (offset: number) => ({ docs, headers, broken: offset });
  if (!next()) return broken(at);
  for (let r = next(); r !== 'end'; r = next()) {
    if (r === null) return broken(at);
    const meta = deserialize(r.bytes);
    declared.add(`${String(meta.db)}.${String(meta.collection)}`);
  }
  while (at < bytes.length) {
    const headerAt = at;
    const header = next();
    if (header === null || header === 'end') return broken(headerAt);
    let ns: Document;
    try {
      ns = deserialize(header.bytes);
    } catch {
      return broken(headerAt);
    }
    // A segment of a namespace the prelude does not declare is a damaged header: its documents belong nowhere.
    if (typeof ns.db !== 'string' || typeof ns.collection !== 'string' || !declared.has(`${ns.db}.${ns.collection}`)) return broken(headerAt);
    headers.push({ offset: headerAt, collection: ns.collection });
    for (;;) {
      const docAt = at;
      const r = next();
      if (r === null) return broken(docAt);
      if (r === 'end') break;
      if (ns.collection === collection) docs.push(r);
    }
  }
  return { docs, headers, broken: null };
}

/** The archive with one segment header of `collection` renamed (its first letter an X): a namespace the archive does not declare; null when no header of it is framed. */
function renameSegment(archive: Buffer, collection: string, rng: Rng): Buffer | null {
  const mine = frameArchive(archive, collection).headers.filter((h) => h.collection === collection);
  if (mine.length === 0) return null;
  const header = rng.pick(mine);
  const out = Buffer.from(archive);
  const key = out.indexOf(Buffer.from('collection\0'), header.offset);
  out[key + 'collection\0'.length + 4] = 0x58;
  return out;
}

/** Where a value starting at `at` ends, its lengths checked against `limit` as extract checks them; null when they do not fit. */
function checkedValueEnd(doc: Buffer, type: number, at: number, limit: number): number | null {
  const fixed = (n: number) => (at + n > limit ? null : at + n);
  const lengthAt = (a: number) => (a + 4 > limit ? null : doc.readInt32LE(a));
  const string = (a: number) => {
    const n = lengthAt(a);
    return n === null || n < 1 || a + 4 + n > limit || doc[a + 4 + n - 1] !== 0 ? null : a + 4 + n;
  };
  const cstring = (a: number) => {
    const e = doc.indexOf(0, a);
    return e === -1 || e >= limit ? null : e;
  };
  switch (type) {
    case 0x01: case 0x09: case 0x11: case 0x12: return fixed(8);
    case 0x10: return fixed(4);
    case 0x07: return fixed(12);
    case 0x13: return fixed(16);
    case 0x08: return fixed(1);
    case 0x06: case 0x0a: case 0x7f: case 0xff: return fixed(0);
    case 0x02: case 0x0d: case 0x0e: return string(at);
    case 0x03: case 0x04: case 0x0f: {
      const n = lengthAt(at);
      return n === null || n < 5 || at + n > limit ? null : at + n;
    }
    case 0x05: {
      const n = at + 5 > limit ? null : doc.readInt32LE(at);
      return n === null || n < 0 || at + 5 + n > limit ? null : at + 5 + n;
    }
    case 0x0b: {
      const first = cstring(at);
      const second = first === null ? null : cstring(first + 1);
      return second === null ? null : second + 1;
    }
    case 0x0c: {
      const e = string(at);
      return e === null || e + 12 > limit ? null : e + 12;
    }
    default: return null;
  }
}

/** The top-level fields of a framed document fill its length exactly (else extract cannot trust the length, and stops). */
function fieldsFill(doc: Buffer): boolean {
  const limit = doc.length - 1;
  for (let i = 4; ; ) {
    const type = doc[i]!;
    if (type === 0) return i === limit;
    const nameEnd = doc.indexOf(0, i + 1);
    if (nameEnd === -1 || nameEnd >= limit) return false;
    const end = checkedValueEnd(doc, type, nameEnd + 1, limit);
    if (end === null) return false;
    i = end;
  }
}

/** The offsets where a read may stop: the documents whose fields do not fill them, then the broken framing; in file order. */
function stopOffsets(framing: Framing): number[] {
  const offsets = framing.docs.filter((d) => !fieldsFill(d.bytes)).map((d) => d.offset);
  return framing.broken === null ? offsets : [...offsets, framing.broken];
}

// ── One case ────────────────────────────────────────────────────────────────────────────────────

/** gzip-cut: the target's .bson.gz cut short; gzip-tail: bytes after its gzip stream (a clear stop, or read as they decompress). */
type Container = 'bson' | 'gzip' | 'archive' | 'gzip-cut' | 'gzip-tail';

interface Case {
  readonly index: number;
  readonly container: Container;
  readonly target: Collection;
  readonly kinds: string[];
  /** Extract with --propagate-deletes (the ids pass reads the damaged file too). */
  readonly propagate: boolean;
}

interface Baseline {
  /** Per collection, the staged line of each clean document (null: left out by the query). */
  readonly lines: Record<Collection, (string | null)[]>;
  readonly files: Record<Collection, string>;
}

class CaseFailure extends Error {}

/** What the cases came to (printed with the result): damaged documents compared with bson's reading, rejects by reason. */
const stats = { compared: 0, untouched: 0, reasons: {} as Record<string, number> };

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new CaseFailure(message);
}

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CaseFailure(`${what} did not finish in ${CASE_TIMEOUT_MS} ms (a hang)`)), CASE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function writeDump(dir: string, c: Case, files: Record<Collection, Buffer>, rng: Rng): Promise<{ source: string; file: string }> {
  await mkdir(dir, { recursive: true });
  if (c.container === 'archive') {
    const source = path.join(dir, 'dump.archive');
    // The damaged collection's bytes go in as they are, in one segment: its framing is the archive's.
    let archive = archiveBytes(DB, Object.fromEntries(COLLECTIONS.map((n) => [n, n === c.target ? [files[n]] : cleanBytes[n]])));
    const renamed = rng.chance(0.2) ? renameSegment(archive, c.target, rng) : null;
    if (renamed) {
      archive = renamed;
      c.kinds.push('renameSegment');
    }
    await writeFile(source, archive);
    return { source, file: source };
  }
  const folder = path.join(dir, DB);
  await mkdir(folder, { recursive: true });
  for (const name of COLLECTIONS) {
    const gz = c.container !== 'bson';
    let bytes = gz ? gzipSync(files[name]) : files[name];
    if (c.container === 'gzip-cut' && name === c.target) bytes = bytes.subarray(0, rng.int(1, bytes.length - 1));
    if (c.container === 'gzip-tail' && name === c.target) bytes = Buffer.concat([bytes, rng.chance(0.5) ? Buffer.alloc(rng.int(1, 30)) : Buffer.from(Array.from({ length: rng.int(1, 30) }, () => rng.below(256)))]);
    await writeFile(path.join(folder, `${name}.bson${gz ? '.gz' : ''}`), bytes);
  }
  return { source: folder, file: path.join(folder, `${c.target}.bson${c.container === 'bson' ? '' : '.gz'}`) };
}

/** How extract names bytes after a gzip stream, which have no offset to give. */
const TRAILING_GZIP = 'its gzip stream is followed by bytes that are not gzip';

/**
 * The message of an EtlError stopping the run: names the file and a byte offset (the expected one
 * when known). Bytes after a gzip stream have no offset to name (gunzip drops the last write's
 * output): that message says what they are instead.
 */
function checkStop(error: unknown, file: string, offset: number | null, trailing = false): void {
  check(error instanceof EtlError, `not an EtlError: ${(error as Error)?.stack ?? String(error)}`);
  check(error.exitCode === 1, `exit code ${error.exitCode}: ${error.message}`);
  check(/^[a-z_]+$/.test(error.code), `code ${error.code}`);
  const m = error.message;
  check(m.includes(file), `the message names ${file}: ${m}`);
  check(!/undefined|NaN|\[object Object\]|TypeError|RangeError/.test(m) && !STACK_LINE.test(m), `a clean message: ${m}`);
  if (trailing && m.endsWith(TRAILING_GZIP)) return;
  const at = /byte offset (\d+)/.exec(m);
  check(at, `the message names a byte offset: ${m}`);
  if (offset !== null) check(Number(at[1]) === offset, `the message names offset ${offset}: ${m}`);
}

async function readLines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
}

/** What bson's EJSON writes for a document as extract would stage it (projected, and only when the query takes it); undefined when bson refuses the bytes. */
function oracleLine(bytes: Buffer, keep: ReadonlySet<string>, query: Document): string | null | undefined {
  let doc: Document;
  try {
    doc = deserialize(bytes, BSON_READ_OPTIONS);
  } catch {
    return undefined;
  }
  if (!matchesQuery(deserialize(bytes, { ...BSON_READ_OPTIONS, validation: { utf8: false } }), query)) return null;
  const projected: Document = {};
  for (const [k, v] of Object.entries(doc)) if (keep.has(k)) projected[k] = v;
  try {
    return EJSON.stringify(projected, { relaxed: false });
  } catch {
    // bson's writer recurses: a deep document overflows its stack (extract rejects it: too_deep).
    return undefined;
  }
}

/** bson reads the bytes (strings that are not UTF-8 aside: extract stages those in an escape). */
function bsonReads(bytes: Buffer): boolean {
  try {
    deserialize(bytes, { ...BSON_READ_OPTIONS, validation: { utf8: false } });
    return true;
  } catch {
    return false;
  }
}

/** Key order as JSON.parse gives it, so an integer-like or repeated key compares the same on both sides. */
const normal = (line: string): string => JSON.stringify(JSON.parse(line));

interface Extracted {
  readonly report: ExtractReport;
  readonly stagingDir: string;
}

async function checkCollection(c: Case, name: Collection, report: ExtractReport, framing: Framing, file: string, base: Baseline, keep: ReadonlySet<string>): Promise<void> {
  const paths = runPaths(path.dirname(report.runDir), report.runId);
  const record = (await readManifest(paths)).stages.extract!.collections[name]!;
  const staged = await readLines(paths.extractFile(name));
  if (name !== c.target) {
    check((await readFile(paths.extractFile(name), 'utf8')) === base.files[name], `${name} (untouched) is staged as in the clean run`);
    return;
  }
  const docs = framing.docs;
  check(record.scanned === docs.length, `${name}: scanned ${record.scanned}, the framing delimits ${docs.length}`);
  check(record.documents === staged.length && record.records === staged.length, `${name}: ${staged.length} lines, manifest says ${record.documents}`);
  check(record.documents + (record.rejected ?? 0) + (record.unmatched ?? 0) === record.scanned, `${name}: staged + rejected + unmatched = read`);
  for (const line of staged) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new CaseFailure(`${name}: a staged line is not JSON: ${line.slice(0, 200)}`);
    }
    check(typeof parsed === 'object' && parsed !== null && '_id' in parsed, `${name}: a staged line without _id: ${line.slice(0, 200)}`);
  }
  const rejects = record.rejects ? (await readLines(path.join(report.runDir, record.rejects.file))).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  check(rejects.length === (record.rejected ?? 0), `${name}: ${rejects.length} reject lines, manifest says ${record.rejected}`);
  const rejectedAt = new Set<number>();
  for (const r of rejects) {
    const index = docs.findIndex((d) => d.offset === r.offset);
    check(r.collection === name && r.file === file, `${name}: reject names ${String(r.collection)} / ${String(r.file)}`);
    check(index >= 0 && !rejectedAt.has(index), `${name}: reject at offset ${String(r.offset)} is not one document the framing delimits`);
    check(r.position === index + 1, `${name}: reject at offset ${String(r.offset)} says position ${String(r.position)}, it is ${index + 1}`);
    check(REASONS.has(String(r.reason)) && typeof r.detail === 'string' && !/undefined|\[object Object\]/.test(r.detail), `${name}: reject reason ${String(r.reason)} / ${String(r.detail)}`);
    rejectedAt.add(index);
    stats.reasons[String(r.reason)] = (stats.reasons[String(r.reason)] ?? 0) + 1;
  }
  // Each document not rejected: staged as bson reads it (when bson does), untouched ones byte for byte.
  const pool = new Map<string, number>();
  for (const l of staged) pool.set(normal(l), (pool.get(normal(l)) ?? 0) + 1);
  const take = (line: string, what: string) => {
    const n = pool.get(normal(line)) ?? 0;
    check(n > 0, `${name}: ${what} is not staged as expected: ${line.slice(0, 300)}\n  staged: ${staged.filter((s) => !base.lines[name].includes(s)).map((s) => s.slice(0, 300)).join('\n          ') || '(nothing new)'}`);
    pool.set(normal(line), n - 1);
  };
  const query = EJSON.deserialize(record.filter as Document, { relaxed: false });
  let unmatched = 0;
  let unknown = 0;
  for (const [i, d] of docs.entries()) {
    const clean = base.lines[name].findIndex((_, k) => cleanBytes[name][k]!.equals(d.bytes));
    if (clean >= 0) {
      check(!rejectedAt.has(i), `${name}: an untouched document (offset ${d.offset}) is rejected`);
      const line = base.lines[name][clean];
      if (line === null || line === undefined) unmatched += 1;
      else {
        check(staged.includes(line), `${name}: untouched document at offset ${d.offset} not staged byte for byte as before: ${line}`);
        take(line, `untouched document at offset ${d.offset}`);
        stats.untouched += 1;
      }
      continue;
    }
    if (rejectedAt.has(i)) {
      const r = rejects.find((x) => x.offset === d.offset)!;
      if (r.reason === 'invalid_bson') check(!bsonReads(d.bytes), `${name}: bson reads the document at offset ${d.offset}, extract rejects it as not BSON (${String(r.detail)})`);
      continue;
    }
    const expected = oracleLine(d.bytes, keep, query);
    if (expected === null) unmatched += 1;
    if (expected === undefined) unknown += 1;
    if (expected === undefined || expected === null) continue;
    if (expected.includes('"$date":{"$numberLong":"NaN"}') || /"\$(etl|ref|db|id)|\$code|\$symbol/.test(expected)) continue;
    if (expected.includes('"$')) {
      // A subdocument with a `$` key is staged in the escape; bson writes it bare.
      const parsed = JSON.stringify(JSON.parse(expected), (_k, v: unknown) => v);
      if (/\{"\$(?!oid|date|number|binary|regularExpression|timestamp|minKey|maxKey)/.test(parsed)) continue;
    }
    take(expected, `the damaged document at offset ${d.offset} (bson reads it)`);
    stats.compared += 1;
  }
  if (c.propagate) await checkIds(name, record, report.runDir, docs, rejects, staged);
  if (name === 'users' || name === 'events') check(record.unmatched === 0 && unmatched === 0, `${name}: no query, yet ${record.unmatched} unmatched`);
  const left = record.unmatched ?? 0;
  check(left >= unmatched && left <= unmatched + unknown, `${name}: ${left} left out by the query, bson's reading says ${unmatched} (+ up to ${unknown} it cannot read)`);
}

/** The ids pass (delete propagation): every document read; a listing that may lack a rejected document's _id is never called complete. */
async function checkIds(name: Collection, record: ExtractCollectionRecord, runDir: string, docs: readonly Framed[], rejects: readonly Record<string, unknown>[], staged: readonly string[]): Promise<void> {
  const ids = record.ids;
  check(ids, `${name}: --propagate-deletes, yet no ids listing`);
  check(ids.scanned === docs.length, `${name} ids pass: scanned ${ids.scanned}, the framing delimits ${docs.length}`);
  const listed = new Set((await readLines(path.join(runDir, ids.file))).map((l) => JSON.stringify((JSON.parse(l) as { _id: unknown })._id)));
  for (const r of rejects) {
    // A document without _id owns no row; nor does one whose _id is not UTF-8 (no key can hold it).
    if (r.reason === 'missing_id' || (r.reason === 'invalid_utf8' && /the _id is a string/.test(String(r.detail)))) continue;
    const id = typeof r._id === 'string' ? (/^[0-9a-f]{24}$/.test(r._id) ? JSON.stringify({ $oid: r._id }) : JSON.stringify(JSON.parse(r._id))) : null;
    // Its _id is listed (the ids pass reads less of a document), or the listing is not called complete.
    const ok = ids.complete === false || (id !== null ? listed.has(id) : (ids.rejected ?? 0) === 0);
    check(ok, `${name} ids pass: called complete, yet the document rejected at offset ${String(r.offset)} (${String(r.reason)}, _id ${String(r._id)}) may be missing from it`);
  }
  if (name !== 'recipes') {
    for (const line of staged) check(listed.has(JSON.stringify((JSON.parse(line) as { _id: unknown })._id)), `${name} ids pass: a staged _id is not listed: ${line.slice(0, 120)}`);
  }
}

const cleanBytes = cleanDocuments();

/** With DUMP_FUZZ_TRACE, where the fuzz is, on stderr (a case that never ends, or takes all memory). */
function trace(what: string): void {
  if (process.env.DUMP_FUZZ_TRACE) process.stderr.write(`${what}\n`);
}

/** The first cases that stop and that extract are run once more through the real command. */
const CLI_CASES = 2;
const cli = { stopped: 0, extracted: 0 };

/** `etl extract` on the same dump: the exit code of the in-process run, and on stderr a clean message (no stack). */
async function checkCli(c: Case, source: string, file: string, dir: string, code: 0 | 1): Promise<void> {
  const args = ['extract', '--pipeline', PIPELINE, '--staging', path.join(dir, 'cli-staging'), '--source', source, '--full', ...(c.propagate ? ['--propagate-deletes'] : [])];
  const r = await etl(args, { cwd: dir, timeoutMs: CASE_TIMEOUT_MS });
  check(r.code === code, `etl extract exits ${r.code}, the in-process run said ${code}:\n${r.stderr}`);
  check(!STACK_LINE.test(r.stderr) && !/undefined|NaN|\[object Object\]|TypeError|RangeError/.test(r.stderr), `etl extract's stderr is clean:\n${r.stderr}`);
  const located = /byte offset \d+/.test(r.stderr) || (c.container === 'gzip-tail' && r.stderr.includes(TRAILING_GZIP));
  if (code === 1) check(r.stderr.includes(file) && located, `etl extract names ${file} and a byte offset:\n${r.stderr}`);
}

async function runCase(c: Case, rng: Rng, dir: string, model: PipelineModel, base: Baseline, keepOf: Record<Collection, ReadonlySet<string>>): Promise<Extracted | null> {
  const files = Object.fromEntries(COLLECTIONS.map((n) => [n, bsonBytes(cleanBytes[n])])) as Record<Collection, Buffer>;
  const mutated = mutate(cleanBytes[c.target], rng);
  c.kinds.push(...mutated.kinds);
  files[c.target] = mutated.bytes;
  const { source, file } = await writeDump(dir, c, files, rng);
  let framing: Framing;
  if (c.container === 'archive') {
    const archive = await readFile(source);
    framing = frameArchive(archive, c.target);
  } else framing = frameFile(files[c.target]);
  const stagingDir = path.join(dir, 'staging');
  trace(`  ${c.kinds.join('+')} in ${c.target} (${c.container}): extract`);
  let report: ExtractReport;
  try {
    report = await withTimeout(runExtract({ model, stagingDir, source: { kind: 'dump', path: source }, full: true, propagateDeletes: c.propagate }), 'extract');
  } catch (error) {
    if (error instanceof CaseFailure) throw error;
    if (cli.stopped < CLI_CASES) {
      cli.stopped += 1;
      await checkCli(c, source, file, dir, 1);
    }
    if (c.container === 'gzip-cut' || c.container === 'gzip-tail') {
      checkStop(error, file, null, c.container === 'gzip-tail');
      return null;
    }
    const stops = stopOffsets(framing);
    check(stops.length > 0, `the run stopped though the framing is whole: ${(error as Error).message}`);
    // Any of them: the reader may meet a broken framing while it gathers the batch holding an earlier damaged document.
    checkStop(error, file, null);
    const at = Number(/byte offset (\d+)/.exec((error as Error).message)?.[1]);
    check(stops.includes(at), `the run stopped at offset ${at}, where nothing is broken (broken: ${stops.join(', ')})`);
    const runs = (await readdir(stagingDir)).filter((n) => n !== 'latest');
    for (const run of runs) {
      const left = await readdir(path.join(stagingDir, run, 'extract')).catch(() => []);
      check(!left.some((f) => f.endsWith('.partial')), `no .partial file left: ${left.join(', ')}`);
    }
    return null;
  }
  check(c.container !== 'gzip-cut', 'a gzipped file cut short was read to its end without a word');
  if (cli.extracted < CLI_CASES) {
    cli.extracted += 1;
    await checkCli(c, source, file, dir, 0);
  }
  check(framing.broken === null, `the framing is broken at offset ${framing.broken}, yet the run went on`);
  if (c.target !== 'recipes') check(stopOffsets(framing).length === 0, `the fields of the document at offset ${stopOffsets(framing)[0]} do not fill its length, yet the run went on`);
  trace('  check');
  for (const name of COLLECTIONS) await checkCollection(c, name, report, framing, file, base, keepOf[name]);
  const ids = (await readLines(runPaths(stagingDir, report.runId).extractFile(c.target))).map((l) => JSON.stringify((JSON.parse(l) as { _id: unknown })._id));
  if (new Set(ids).size < ids.length) check(report.warnings.some((w) => /repeat the _id/.test(w)) || report.collections.some((x) => (x.warnings ?? []).some((w) => /repeat the _id/.test(w))), `${c.target}: two staged documents share an _id, and no warning says so`);
  trace('  transform');
  const transformed = await withTimeout(runTransform({ model, stagingDir, runId: report.runId }), 'transform');
  for (const t of transformed.tables) {
    const read = report.collections.find((x) => x.collection === t.collection)?.documents ?? 0;
    check(t.documents === read, `transform ${t.table}: read ${t.documents} documents, extract staged ${read}`);
    if (t.strategy === 'upsert') {
      const skipped = Object.values(t.skipped).reduce((a, b) => a + b, 0);
      check(t.rows + t.rejected + skipped === t.documents, `transform ${t.table}: rows ${t.rows} + rejected ${t.rejected} + skipped ${skipped} ≠ ${t.documents}`);
    }
  }
  return { report, stagingDir };
}

// ── The property ────────────────────────────────────────────────────────────────────────────────

interface Failure {
  readonly c: Case;
  readonly message: string;
}

async function baseline(dir: string, model: PipelineModel): Promise<Baseline> {
  const folder = path.join(dir, 'clean', DB);
  await mkdir(folder, { recursive: true });
  for (const n of COLLECTIONS) await writeFile(path.join(folder, `${n}.bson`), bsonBytes(cleanBytes[n]));
  const report = await runExtract({ model, stagingDir: path.join(dir, 'clean-staging'), source: { kind: 'dump', path: folder }, full: true });
  const paths = runPaths(path.dirname(report.runDir), report.runId);
  const lines = {} as Baseline['lines'];
  const files = {} as Baseline['files'];
  for (const n of COLLECTIONS) {
    files[n] = await readFile(paths.extractFile(n), 'utf8');
    const staged = files[n].split('\n').filter(Boolean);
    // The clean documents are in _id order: each stages its own line, or is left out by the query.
    lines[n] = cleanBytes[n].map((b) => {
      const id = EJSON.stringify({ _id: deserialize(b, BSON_READ_OPTIONS)._id }, { relaxed: false }).slice(1, -1);
      return staged.find((l) => l.startsWith(`{${id},`)) ?? null;
    });
  }
  assert.equal(lines.users.filter(Boolean).length, 24);
  assert.equal(lines.recipes.filter(Boolean).length, 6, 'the menus filter leaves out half the recipes');
  return { lines, files };
}

function describeFailures(failures: readonly Failure[]): string {
  const groups = new Map<string, Failure[]>();
  for (const f of failures) {
    const key = `${f.c.kinds.join('+')} [${f.c.container}${f.c.propagate ? ', --propagate-deletes' : ''}]: ${f.message.split('\n')[0]!.replace(/\d+/g, 'N').replace(/\/tmp\/\S+/g, 'FILE').slice(0, 160)}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const text = [...groups.entries()].map(([key, fs]) => `- ${fs.length}× ${key}\n    e.g. case ${fs[0]!.c.index}: ${fs[0]!.message.slice(0, 800)}\n    replay: ${replay(fs[0]!.c.index)}`);
  return `${failures.length} of the cases failed (seed ${SEED}):\n${text.join('\n')}`;
}

test(`a damaged mongodump never crashes extract, and every document is accounted for (seed ${SEED})`, async (t) => {
  const dir = await tempDir('etl-dump-fuzz-', t);
  const model = await loadPipeline(PIPELINE);
  const base = await baseline(dir, model);
  const keepOf = Object.fromEntries(
    COLLECTIONS.map((n) => [n, new Set(['_id', ...model.collections.find((x) => x.name === n)!.projection.map((p) => p.split('.')[0]!)])]),
  ) as unknown as Record<Collection, ReadonlySet<string>>;
  let servers: Servers | null = null;
  const failures: Failure[] = [];
  const counts = { extracted: 0, stopped: 0, loaded: 0 };
  const indexes = ONLY !== null ? [ONLY] : Array.from({ length: CASES }, (_, i) => i);
  for (const index of indexes) {
    const rng = new Rng(hash(SEED, index));
    const container = rng.weighted<Container>([['bson', 10], ['gzip', 2], ['archive', 3], ['gzip-cut', 1], ['gzip-tail', 1]]);
    const c: Case = { index, container, target: rng.weighted<Collection>([['users', 6], ['events', 1], ['recipes', 2]]), kinds: [], propagate: rng.chance(0.3) };
    const caseDir = path.join(dir, `case-${index}`);
    trace(`case ${index}`);
    try {
      const extracted = await runCase(c, rng, caseDir, model, base, keepOf);
      if (extracted === null) counts.stopped += 1;
      else counts.extracted += 1;
      if (extracted && (counts.loaded < LOADS || ONLY !== null) && (rng.chance(0.2) || ONLY !== null)) {
        servers ??= await startServers(t, { mongo: false });
        const url = await servers.postgres.createDatabase(`fuzz_${SEED}_${index}`);
        const postgres = { connectionString: url, host: '', port: 0, database: '', user: '', password: null };
        const loaded = await withTimeout(runLoad({ model, stagingDir: extracted.stagingDir, runId: extracted.report.runId, postgres }), 'load');
        check(loaded.tables.length > 0, 'load loaded the staged tables');
        counts.loaded += 1;
      }
    } catch (error) {
      failures.push({ c, message: error instanceof CaseFailure ? error.message : `crash: ${(error as Error)?.stack ?? String(error)}` });
    } finally {
      await rm(caseDir, { recursive: true, force: true });
    }
  }
  t.diagnostic(`seed ${SEED}: ${indexes.length} cases, ${counts.extracted} extracted, ${counts.stopped} stopped on broken framing, ${counts.loaded} loaded; ${stats.compared} damaged documents staged as bson reads them, ${stats.untouched} untouched ones byte for byte; extract rejects ${JSON.stringify(stats.reasons)}`);
  if (failures.length) assert.fail(describeFailures(failures));
});
