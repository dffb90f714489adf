// The bench's dataset, generated once per (scale, seed) and kept under bench/.cache/<scale>-<seed>/:
//   dump/<db>/<collection>.bson   the sample as mongodump writes it (dump.json records it is whole)
//   ferretdb/                     FerretDB's SQLite files holding the same documents (ferretdb.json)
// Each is built under a `.partial` name and renamed once complete, so an interrupted build is
// never mistaken for a cached one. With MONGODB_URL, the live copy is a database on that server
// instead, marked complete by a document in its `etl_bench_meta` collection.
import { cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { generateSample, type SamplePlan } from '../sample/generate.ts';
import { writeDump } from '../sample/write-dump.ts';
import { writeMongo } from '../sample/write-mongo.ts';
import { externalMongo, startFerretDbOn, type BenchMongoServer } from './mongo-server.ts';

export const BENCH_DATABASE = 'wappizy';
const META_COLLECTION = 'etl_bench_meta';

export type Log = (line: string) => void;

export interface DumpDataset {
  /** The mongodump output folder (holds <database>/). */
  readonly dumpDir: string;
  readonly database: string;
  readonly documents: number;
  readonly bytes: number;
  readonly plan: SamplePlan;
  /** Seconds the generation took (when it was made, possibly by an earlier bench run). */
  readonly generateSeconds: number;
  readonly cached: boolean;
}

export interface LiveDataset {
  readonly server: BenchMongoServer;
  readonly database: string;
  /** Seconds loading the documents into the server took (when it was made). */
  readonly loadSeconds: number;
  readonly cached: boolean;
}

interface DumpMarker {
  scale: number;
  seed: number;
  database: string;
  documents: number;
  bytes: number;
  plan: SamplePlan;
  generate_seconds: number;
}

interface LiveMarker {
  scale: number;
  seed: number;
  database: string;
  documents: number;
  load_seconds: number;
}

export function cacheDirFor(root: string, scale: number, seed: number): string {
  return path.join(root, `${scale}-${seed}`);
}

async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

export async function ensureDump(cacheDir: string, scale: number, seed: number, log: Log): Promise<DumpDataset> {
  const dumpDir = path.join(cacheDir, 'dump');
  const markerFile = path.join(cacheDir, 'dump.json');
  const marker = await readJson<DumpMarker>(markerFile);
  if (marker && marker.scale === scale && marker.seed === seed && (await exists(path.join(dumpDir, marker.database)))) {
    return { dumpDir, database: marker.database, documents: marker.documents, bytes: marker.bytes, plan: marker.plan, generateSeconds: marker.generate_seconds, cached: true };
  }
  await mkdir(cacheDir, { recursive: true });
  const partial = `${dumpDir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await rm(dumpDir, { recursive: true, force: true });
  log(`generating ${scale.toLocaleString('en-US')} documents (seed ${seed}) as a mongodump folder…`);
  const started = performance.now();
  const sample = generateSample({ scale, seed });
  let lastLog = started;
  const report = await writeDump(
    sample,
    { dir: partial, database: BENCH_DATABASE, gzip: false, replace: false },
    {
      onProgress: (p) => {
        const now = performance.now();
        if (now - lastLog > 10_000) {
          lastLog = now;
          log(`  ${p.collection}: ${p.written.toLocaleString('en-US')} of ${p.total.toLocaleString('en-US')}`);
        }
      },
    },
  );
  const seconds = (performance.now() - started) / 1000;
  await rename(partial, dumpDir);
  const documents = report.collections.reduce((a, c) => a + c.documents, 0);
  const bytes = report.collections.reduce((a, c) => a + c.bytes, 0);
  const made: DumpMarker = { scale, seed, database: BENCH_DATABASE, documents, bytes, plan: sample.plan, generate_seconds: round(seconds) };
  await writeFile(markerFile, `${JSON.stringify(made, null, 2)}\n`);
  log(`  generated ${documents.toLocaleString('en-US')} documents, ${(bytes / 2 ** 20).toFixed(0)} MiB, in ${seconds.toFixed(1)} s`);
  return { dumpDir, database: BENCH_DATABASE, documents, bytes, plan: sample.plan, generateSeconds: round(seconds), cached: false };
}

/**
 * The live copy of the dataset, served: the cached FerretDB directory (loaded once, which is slow),
 * or a database on the MONGODB_URL server (loaded once too, marked complete in etl_bench_meta).
 */
export async function openLiveDataset(cacheDir: string, scale: number, seed: number, mongoUrl: string | undefined, log: Log): Promise<LiveDataset> {
  if (mongoUrl) return openExternal(mongoUrl, `etl_bench_${scale}_${seed}`, scale, seed, log, false);
  const cache = await ensureFerretDbCache(cacheDir, scale, seed, log);
  const server = await startFerretDbOn(cache.dir);
  return { server, database: cache.database, loadSeconds: cache.loadSeconds, cached: cache.cached };
}

/** The FerretDB data directory holding the dataset, loaded the first time (slow: see README). */
async function ensureFerretDbCache(cacheDir: string, scale: number, seed: number, log: Log): Promise<{ dir: string; database: string; loadSeconds: number; cached: boolean }> {
  const dir = path.join(cacheDir, 'ferretdb');
  const markerFile = path.join(cacheDir, 'ferretdb.json');
  const marker = await readJson<LiveMarker>(markerFile);
  if (marker && marker.scale === scale && marker.seed === seed && (await exists(dir))) {
    return { dir, database: marker.database, loadSeconds: marker.load_seconds, cached: true };
  }
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  const server = await startFerretDbOn(partial);
  let seconds: number;
  try {
    seconds = await loadSample(server.url, BENCH_DATABASE, scale, seed, log);
  } finally {
    await server.stop();
  }
  await rename(partial, dir);
  const made: LiveMarker = { scale, seed, database: BENCH_DATABASE, documents: scale, load_seconds: round(seconds) };
  await writeFile(markerFile, `${JSON.stringify(made, null, 2)}\n`);
  return { dir, database: BENCH_DATABASE, loadSeconds: round(seconds), cached: false };
}

/**
 * A copy of the live dataset the caller may change (the incremental benchmark mutates it): the
 * cached FerretDB files copied into `workDir`, or, on a MONGODB_URL server, a scratch database
 * loaded afresh (a server-side copy of a database does not exist in MongoDB).
 */
export async function openScratchLiveDataset(
  cacheDir: string,
  workDir: string,
  scale: number,
  seed: number,
  mongoUrl: string | undefined,
  log: Log,
): Promise<LiveDataset & { prepareSeconds: number }> {
  const started = performance.now();
  if (mongoUrl) {
    const live = await openExternal(mongoUrl, `etl_bench_scratch_${scale}_${seed}`, scale, seed, log, true);
    return { ...live, prepareSeconds: round((performance.now() - started) / 1000) };
  }
  const cached = await ensureFerretDbCache(cacheDir, scale, seed, log);
  const dir = path.join(workDir, 'ferretdb-scratch');
  await rm(dir, { recursive: true, force: true });
  await cp(cached.dir, dir, { recursive: true });
  const server = await startFerretDbOn(dir);
  return { server, database: cached.database, loadSeconds: cached.loadSeconds, cached: cached.cached, prepareSeconds: round((performance.now() - started) / 1000) };
}

async function openExternal(url: string, database: string, scale: number, seed: number, log: Log, reload: boolean): Promise<LiveDataset> {
  const server = externalMongo(url);
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
  try {
    await client.connect();
    const meta = client.db(database).collection<LiveMarker & { _id: string }>(META_COLLECTION);
    const marker = reload ? null : await meta.findOne({ _id: 'complete' });
    if (marker && marker.scale === scale && marker.seed === seed) {
      return { server, database, loadSeconds: marker.load_seconds, cached: true };
    }
    await client.db(database).dropDatabase();
  } finally {
    await client.close().catch(() => undefined);
  }
  const seconds = await loadSample(url, database, scale, seed, log);
  const again = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
  try {
    await again.connect();
    await again
      .db(database)
      .collection<LiveMarker & { _id: string }>(META_COLLECTION)
      .insertOne({ _id: 'complete', scale, seed, database, documents: scale, load_seconds: round(seconds) });
  } finally {
    await again.close().catch(() => undefined);
  }
  return { server, database, loadSeconds: round(seconds), cached: false };
}

async function loadSample(url: string, database: string, scale: number, seed: number, log: Log): Promise<number> {
  log(`loading ${scale.toLocaleString('en-US')} documents into the live server (database ${database}); done once, then cached…`);
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
  const started = performance.now();
  let lastLog = started;
  try {
    await client.connect();
    await writeMongo(
      generateSample({ scale, seed }),
      { db: client.db(database), drop: true },
      {
        onProgress: (p) => {
          const now = performance.now();
          if (now - lastLog > 15_000) {
            lastLog = now;
            log(`  ${p.collection}: ${p.written.toLocaleString('en-US')} of ${p.total.toLocaleString('en-US')} (${((now - started) / 1000).toFixed(0)} s)`);
          }
        },
      },
    );
  } finally {
    await client.close().catch(() => undefined);
  }
  const seconds = (performance.now() - started) / 1000;
  log(`  loaded in ${seconds.toFixed(1)} s (${Math.round(scale / seconds).toLocaleString('en-US')} docs/s)`);
  return seconds;
}

export function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
