// Test fixture: a real staged run, made the way users make one — a mongodump folder written with
// `bson`, then runExtract and runTransform on it — in a temporary project folder (pipeline.yaml +
// staging/). Small, but it has every strategy, rejects, skips, an emptied array and a dedupe.
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Int32, ObjectId, serialize, type Document } from 'bson';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { readManifest, writeManifest, type Manifest } from '../../staging/manifest.ts';
import { runPaths, setLatest, type RunPaths } from '../../staging/run-folder.ts';
import { DEFAULT_STAGING } from '../../connect/config.ts';

export const PIPELINE_YAML = `# audit test pipeline: one table per strategy
settings:
  timezone: Europe/Paris
tables:
  users:
    include_base: true
    additional_columns:
      - name: name
        sql_type: VARCHAR(255)
        nullable: false
      - name: email
        sql_type: VARCHAR(255)
      - name: age
        sql_type: INTEGER
    export_order: 1
  events:
    include_base: true
    additional_columns:
      - name: title
        sql_type: TEXT
        nullable: false
    export_order: 1
  users_events:
    mongo_collection: users
    strategy: explode
    parent_column: user_id
    merge: delete_and_insert
    arrays:
      - field: registered_events
        item_column: event_id
    columns:
      - name: user_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: users(id)
      - name: event_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: events(id)
      - name: created_at
        sql_type: TIMESTAMP
        nullable: false
      - name: updated_at
        sql_type: TIMESTAMP
        nullable: false
    explicit_mappings:
      creation_date: created_at
      update_date: updated_at
    unique_constraints:
      - [user_id, event_id]
    export_order: 2
  users_logbook:
    mongo_collection: coachinglogbooks
    strategy: dedupe
    dedupe_key: [user_id, day]
    latest_by: updated_at
    columns:
      - name: id
        sql_type: SERIAL
        primary_key: true
      - name: user_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: users(id)
      - name: day
        sql_type: DATE
        nullable: false
      - name: created_at
        sql_type: TIMESTAMP
        nullable: false
      - name: updated_at
        sql_type: TIMESTAMP
        nullable: false
    explicit_mappings:
      user: user_id
      creation_date: created_at
      update_date: updated_at
    unique_constraints:
      - [user_id, day]
    export_order: 2
`;

const oid = (n: number) => new ObjectId(`65f0000000000000000000${n.toString(16).padStart(2, '0')}`);
const at = (day: number, hour = 10) => new Date(Date.UTC(2024, 2, day, hour));

/** Documents with something for every count: rejects, an empty array, dedupe losers, a missing key. */
export function sampleCollections(): Record<string, Document[]> {
  const events = [1, 2, 3].map((n) => ({ _id: oid(100 + n), title: `Webinar ${n}, "quoted"\nsecond line`, creation_date: at(1), update_date: at(2) }));
  const users = [
    { _id: oid(1), name: 'Ada', email: 'ada@example.org', age: new Int32(36), registered_events: [oid(101), oid(102)], creation_date: at(3), update_date: at(4) },
    { _id: oid(2), name: 'Bob', email: '', age: new Int32(41), registered_events: [], creation_date: at(3), update_date: at(5) },
    // No name (NOT NULL): rejected from users, still a parent of users_events.
    { _id: oid(3), email: null, registered_events: [oid(103), oid(103)], creation_date: at(3), update_date: at(6) },
    { _id: oid(4), name: 'Dee', registered_events: [oid(101)], creation_date: at(4), update_date: at(6) },
  ];
  const coachinglogbooks = [
    { _id: oid(50), user: oid(1), day: at(6, 23), creation_date: at(7), update_date: at(7, 8) },
    { _id: oid(51), user: oid(1), day: at(6, 23), creation_date: at(7), update_date: at(7, 9) }, // same key, later: wins
    { _id: oid(52), user: oid(2), day: at(7, 23), creation_date: at(8), update_date: at(8) },
    { _id: oid(53), day: at(7, 23), creation_date: at(8), update_date: at(8) }, // no user: skipped
  ];
  return { users, events, coachinglogbooks };
}

export async function writeDump(dir: string, collections: Record<string, readonly Document[]>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, docs] of Object.entries(collections)) {
    await writeFile(path.join(dir, `${name}.bson`), Buffer.concat(docs.map((d) => serialize(d))));
    await writeFile(path.join(dir, `${name}.metadata.json`), JSON.stringify({ options: {}, indexes: [], collectionName: name, type: 'collection' }));
  }
}

export interface Project {
  /** A project folder: pipeline.yaml and the default staging folder (.etl/runs) in it. */
  readonly cwd: string;
  readonly pipelineFile: string;
  readonly stagingDir: string;
}

export interface RealRun extends Project {
  readonly runId: string;
  readonly paths: RunPaths;
}

export async function newProject(): Promise<Project> {
  const cwd = await mkdtemp(path.join(os.tmpdir(), 'etl-audit-'));
  const pipelineFile = path.join(cwd, 'pipeline.yaml');
  await writeFile(pipelineFile, PIPELINE_YAML);
  // Where the CLI looks by default, so commands run in cwd find the run without --staging.
  return { cwd, pipelineFile, stagingDir: path.join(cwd, DEFAULT_STAGING) };
}

/** extract (from a dump written with bson) + transform, in a new project folder or the one given. */
export async function realRun(project?: Project): Promise<RealRun> {
  const p = project ?? (await newProject());
  const dump = path.join(p.cwd, 'dump', 'wappizy');
  await writeDump(dump, sampleCollections());
  const model = await loadPipeline(p.pipelineFile);
  const extracted = await runExtract({ model, stagingDir: p.stagingDir, source: { kind: 'dump', path: dump }, full: true });
  await runTransform({ model, stagingDir: p.stagingDir, runId: extracted.runId });
  return { ...p, runId: extracted.runId, paths: runPaths(p.stagingDir, extracted.runId) };
}

/** A copy of the run folder, named like a run, in a staging folder of its own under `scratch`, to damage. */
export async function copyOfRun(run: RealRun, scratch: string): Promise<{ stagingDir: string; dir: string }> {
  const stagingDir = await mkdtemp(path.join(scratch, 'staging-'));
  const dir = path.join(stagingDir, run.runId);
  await cp(run.paths.dir, dir, { recursive: true });
  await setLatest(stagingDir, run.runId);
  return { stagingDir, dir };
}

export async function editManifest(paths: RunPaths, change: (m: Manifest) => void): Promise<void> {
  const m = await readManifest(paths);
  change(m);
  await writeManifest(paths, m);
}

export async function readText(file: string): Promise<string> {
  return readFile(file, 'utf8');
}
