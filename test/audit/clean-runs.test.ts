// etl runs and etl clean over a staging folder of runs in every state. The manifests are built with
// the staging/ functions (a load section is what a load writes; no server is needed to list or
// clean), and the folders hold real bytes so sizes and freed space can be checked.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { cleanRuns, parseOlderThan, type CleanReport } from '../../audit/clean.ts';
import { UsageError } from '../../errors/etl-error.ts';
import { listRuns, type RunsReport } from '../../audit/runs.ts';
import { updateManifest, writeManifest, type StageStatus } from '../../staging/manifest.ts';
import { createRun, listRunIds, runPaths, setLatest } from '../../staging/run-folder.ts';
import { etlSync } from '../harness/cli.ts';
import { answer, mkfifoAt, nextRead } from '../harness/fifo-reads.ts';
import { runManifest } from '../harness/staged-run.ts';

/**
 * `writer`: the process a `running` section names (staging/stage-writer.ts). What a run read, as its
 * manifest records it: `from`, each collection's watermark lower bound (null, the default: in full);
 * `repair`: the collections were read by `_id` (`etl repair`); `collections` and `tables`: what it
 * extracted and transformed (default: users); `loadedTables`: what its load committed (default: its
 * tables); `destination`: where its load went (default: none recorded).
 */
type State = {
  extract?: StageStatus; transform?: StageStatus; load?: StageStatus; dryRun?: boolean; noManifest?: boolean; writer?: { pid: number; host: string };
  from?: string | null; repair?: boolean; collections?: string[]; tables?: string[]; loadedTables?: string[]; destination?: string;
};

const record = (file: string, records: number) => ({ file, bytes: records * 10, sha256: '0'.repeat(64), records });

async function makeRun(stagingDir: string, when: string, state: State, payloadBytes: number): Promise<string> {
  const paths = await createRun(stagingDir, new Date(when));
  await writeFile(paths.extractFile('users'), 'x'.repeat(payloadBytes));
  if (state.noManifest) return paths.runId;
  const at = { started_at: when, ended_at: when };
  const m = runManifest(paths, 'a'.repeat(64), {});
  const tables = state.tables ?? ['users'];
  if (state.extract) {
    const from = state.from ?? null;
    const read = state.repair
      ? { requested: { ...record('extract/users.requested.ndjson', 2), ids: 2, found: 2, absent: 0 } }
      : { watermark: { from, next: when } };
    m.stages.extract = {
      status: state.extract, ...at, full: from === null && !state.repair, server_started_at: null,
      collections: Object.fromEntries((state.collections ?? ['users']).map((c) => [c, { ...record(`extract/${c}.ndjson`, 10), documents: 10, filter: {}, ...read, ...at, tables: [c] }])),
    };
  }
  if (state.transform) {
    m.stages.transform = {
      status: state.transform, ...at, pipeline_sha256: 'a'.repeat(64),
      tables: Object.fromEntries(tables.map((t) => [t, {
        collection: t, strategy: 'upsert' as const, documents: 10, rows: 8, rejected: 2, skipped: {}, altered: {},
        csv: record(`transform/${t}.csv`, 8), keys: null, rejects: record(`transform/${t}.rejects.ndjson`, 2),
      }])),
    };
  }
  if (state.load) {
    // A failed load records no table (none committed), as load/load-record.ts markFailed writes it.
    const committed = state.load === 'failed' ? [] : (state.loadedTables ?? tables);
    m.stages.load = {
      status: state.load, ...at, dry_run: state.dryRun === true, already_applied: false,
      tables: Object.fromEntries(committed.map((t) => [t, { staged: 8, inserted: 7, updated: 0, unchanged: 0, deleted: 0, rejected: 1, nulled: 0, duplicates: 0, truncated: [], rejects: null }])),
    };
  }
  if (state.destination) m.destination = { description: state.destination };
  for (const section of Object.values(m.stages)) if (section.status === 'running' && state.writer) section.writer = state.writer;
  await writeManifest(paths, m);
  return paths.runId;
}

const done: State = { extract: 'done', transform: 'done' };
const loaded: State = { ...done, load: 'done' };

let root: string;
before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'etl-clean-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A staging folder with runs in every state, oldest first; `latest` on the newest. */
async function stagingWithHistory() {
  const stagingDir = await mkdtemp(path.join(root, 'staging-'));
  const ids = {
    oldLoaded: await makeRun(stagingDir, '2026-01-01T10:00:00.000Z', loaded, 1000),
    oldFailed: await makeRun(stagingDir, '2026-01-02T10:00:00.000Z', { extract: 'done', transform: 'failed' }, 200),
    oldBroken: await makeRun(stagingDir, '2026-01-02T11:00:00.000Z', { noManifest: true }, 30),
    midLoaded: await makeRun(stagingDir, '2026-01-03T10:00:00.000Z', loaded, 2000),
    oldUnloaded: await makeRun(stagingDir, '2026-01-04T10:00:00.000Z', done, 400),
    oldLoadFailed: await makeRun(stagingDir, '2026-01-04T11:00:00.000Z', { ...done, load: 'failed' }, 50),
    oldDryRun: await makeRun(stagingDir, '2026-01-04T12:00:00.000Z', { ...done, load: 'done', dryRun: true }, 60),
    newestLoaded: await makeRun(stagingDir, '2026-01-05T10:00:00.000Z', loaded, 3000),
    newFailed: await makeRun(stagingDir, '2026-01-06T10:00:00.000Z', { extract: 'failed' }, 70),
    latest: await makeRun(stagingDir, '2026-01-07T10:00:00.000Z', done, 80),
  };
  await setLatest(stagingDir, ids.latest);
  return { stagingDir, ids };
}

const removedIds = (r: CleanReport) => r.removed.map((x) => x.run_id).sort();

describe('clean', () => {
  test('removes superseded loaded runs and unfinished runs older than the newest loaded; keeps the rest', async () => {
    const { stagingDir, ids } = await stagingWithHistory();
    const dry = await cleanRuns({ stagingDir, dryRun: true });
    const expected = [ids.oldLoaded, ids.oldFailed, ids.oldBroken, ids.midLoaded].sort();
    assert.deepEqual(removedIds(dry), expected);
    assert.equal(dry.dry_run, true);
    assert.equal(dry.freed_bytes, dry.removed.reduce((a, r) => a + r.bytes, 0));
    assert.ok(dry.freed_bytes >= 1000 + 200 + 30 + 2000);
    assert.equal((await listRunIds(stagingDir)).length, 10, '--dry-run removes nothing');

    const real = await cleanRuns({ stagingDir });
    assert.deepEqual(removedIds(real), expected);
    assert.equal(real.freed_bytes, dry.freed_bytes);
    const left = await listRunIds(stagingDir);
    assert.deepEqual([...left].sort(), [ids.oldUnloaded, ids.oldLoadFailed, ids.oldDryRun, ids.newestLoaded, ids.newFailed, ids.latest].sort());
    const why = (id: string) => real.kept.find((k) => k.run_id === id)!.reasons.join('; ');
    assert.match(why(ids.latest), /`latest` points at it/);
    assert.match(why(ids.newestLoaded), /newest loaded run/);
    assert.match(why(ids.oldUnloaded), /not yet loaded \(load never ran\)/);
    assert.match(why(ids.oldLoadFailed), /not yet loaded \(load failed\)/);
    assert.match(why(ids.oldDryRun), /not yet loaded \(load done, dry run\)/);
    assert.match(why(ids.newFailed), /unfinished, newer than the newest loaded run/);
    // Idempotent: nothing more goes.
    assert.deepEqual((await cleanRuns({ stagingDir })).removed, []);
  });

  test('latest pointing at an old loaded run keeps it', async () => {
    const { stagingDir, ids } = await stagingWithHistory();
    await setLatest(stagingDir, ids.oldLoaded);
    const r = await cleanRuns({ stagingDir });
    assert.ok(!removedIds(r).includes(ids.oldLoaded));
    assert.ok((await listRunIds(stagingDir)).includes(ids.oldLoaded));
    assert.ok(removedIds(r).includes(ids.midLoaded));
  });

  test('--keep N keeps the N newest; --older-than keeps runs started on or after the date', async () => {
    const { stagingDir, ids } = await stagingWithHistory();
    const keep7 = await cleanRuns({ stagingDir, keep: 7, dryRun: true });
    assert.deepEqual(removedIds(keep7), [ids.oldLoaded, ids.oldFailed, ids.oldBroken].sort());
    const older = await cleanRuns({ stagingDir, olderThan: new Date('2026-01-02T10:30:00Z'), dryRun: true });
    assert.deepEqual(removedIds(older), [ids.oldLoaded, ids.oldFailed].sort());
    assert.match(older.kept.find((k) => k.run_id === ids.midLoaded)!.reasons.join(), /--older-than/);
  });

  test('nothing loaded yet: nothing is removed', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    await makeRun(stagingDir, '2026-01-01T10:00:00.000Z', { extract: 'failed' }, 10);
    await makeRun(stagingDir, '2026-01-02T10:00:00.000Z', done, 10);
    assert.deepEqual((await cleanRuns({ stagingDir })).removed, []);
  });

  test('a stage marked running with a fresh manifest is kept even when old', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const running = await makeRun(stagingDir, '2026-01-01T10:00:00.000Z', { extract: 'done', transform: 'running' }, 10);
    await makeRun(stagingDir, '2026-01-02T10:00:00.000Z', loaded, 10);
    const now = await cleanRuns({ stagingDir, dryRun: true });
    assert.match(now.kept.find((k) => k.run_id === running)!.reasons.join(), /marked running/);
    const later = await cleanRuns({ stagingDir, dryRun: true, now: new Date(Date.now() + 2 * 3600_000) });
    assert.deepEqual(removedIds(later), [running]);
  });

  test('a killed run (a stage running, its process gone) goes by the rules of a failed run, at once; one whose process may be at work stays', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const gone = { pid: spawnSync(process.execPath, ['-e', '']).pid!, host: os.hostname() };
    const ids = {
      killedExtract: await makeRun(stagingDir, '2026-01-01T10:00:00.000Z', { extract: 'running', writer: gone }, 100),
      killedTransform: await makeRun(stagingDir, '2026-01-01T11:00:00.000Z', { extract: 'done', transform: 'running', writer: gone }, 200),
      // Its load may have committed: only its database's ledger knows, as for any load not done.
      killedLoad: await makeRun(stagingDir, '2026-01-01T12:00:00.000Z', { ...done, load: 'running', writer: gone }, 300),
      alive: await makeRun(stagingDir, '2026-01-01T13:00:00.000Z', { extract: 'running', writer: { pid: process.pid, host: os.hostname() } }, 10),
      elsewhere: await makeRun(stagingDir, '2026-01-01T14:00:00.000Z', { extract: 'running', writer: { ...gone, host: `not-${os.hostname()}` } }, 10),
      unrecorded: await makeRun(stagingDir, '2026-01-01T15:00:00.000Z', { extract: 'running' }, 10),
      loaded: await makeRun(stagingDir, '2026-01-02T10:00:00.000Z', loaded, 10),
      killedNewer: await makeRun(stagingDir, '2026-01-03T10:00:00.000Z', { extract: 'running', writer: gone }, 10),
    };
    await setLatest(stagingDir, ids.loaded);
    const r = await cleanRuns({ stagingDir });
    assert.deepEqual(r.removed.map((x) => [x.run_id, x.reason]).sort(), [
      [ids.killedExtract, `killed (extract killed, transform not run, load not run), older than loaded run ${ids.loaded}`],
      [ids.killedTransform, `killed (extract done, transform killed, load not run), older than loaded run ${ids.loaded}`],
    ]);
    const why = (id: string) => r.kept.find((k) => k.run_id === id)!.reasons.join('; ');
    assert.equal(why(ids.killedLoad), 'not yet loaded (load killed)');
    for (const id of [ids.alive, ids.elsewhere, ids.unrecorded]) assert.equal(why(id), 'a stage is marked running and the manifest changed within the hour', id);
    assert.equal(why(ids.killedNewer), 'killed during its extract (its process is gone), newer than the newest loaded run');
  });

  test('parseOlderThan', () => {
    const now = new Date('2026-02-01T00:00:00Z');
    assert.equal(parseOlderThan('7d', now).toISOString(), '2026-01-25T00:00:00.000Z');
    assert.equal(parseOlderThan('12h', now).toISOString(), '2026-01-31T12:00:00.000Z');
    assert.equal(parseOlderThan('2w', now).toISOString(), '2026-01-18T00:00:00.000Z');
    assert.equal(parseOlderThan('2026-01-01', now).toISOString(), '2026-01-01T00:00:00.000Z');
    assert.throws(() => parseOlderThan('yesterday', now), /--older-than must be/);
    // An age past what a date can hold, a day the calendar lacks: refused as usage, not an internal error or March 1st.
    for (const text of ['99999999999d', '2026-02-30']) assert.throws(() => parseOlderThan(text, now), (e: unknown) => e instanceof UsageError && e.code === 'bad_older_than', text);
  });

  test('CLI: --dry-run prints what would go and removes nothing; then clean removes it (--json)', async () => {
    const { stagingDir, ids } = await stagingWithHistory();
    const dry = etlSync(['clean', '--dry-run', '--staging', stagingDir], { cwd: root });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`would remove ${ids.midLoaded} \\([^)]+\\): loaded, superseded by loaded run ${ids.newestLoaded}`));
    assert.match(dry.stdout, /dry run: would remove 4 runs, would free .* \(\d[\d,]* bytes\); kept 6/);
    assert.equal((await readdir(stagingDir)).filter((n) => /^\d{8}T/.test(n)).length, 10);
    const real = etlSync(['clean', '--staging', stagingDir, '--json'], { cwd: root });
    assert.equal(real.code, 0, real.stderr);
    const report = JSON.parse(real.stdout) as CleanReport;
    assert.equal(report.removed.length, 4);
    assert.ok(report.freed_bytes > 3000);
    assert.equal((await readdir(stagingDir)).filter((n) => /^\d{8}T/.test(n)).length, 6);
    assert.equal(etlSync(['clean', '--keep', 'x', '--staging', stagingDir], { cwd: root }).code, 2);
    assert.equal(etlSync(['clean', '--older-than', 'soon', '--staging', stagingDir], { cwd: root }).code, 2);
  });
});

describe('clean: runs not loaded, superseded by a loaded run that read all they carried', () => {
  const shop = 'postgresql://etl@db.example:5432/shop';
  const watermark = '2026-01-01T00:00:00.000Z';
  const incremental: State = { ...done, from: watermark, destination: shop };
  const reasonOf = (r: CleanReport, id: string) => r.removed.find((x) => x.run_id === id)?.reason ?? `kept: ${r.kept.find((k) => k.run_id === id)?.reasons.join('; ')}`;

  test('nightly runs whose load failed go once a later incremental run was loaded into the same database; --dry-run lists them, --json says why', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const ids = {
      firstLoaded: await makeRun(stagingDir, '2026-01-01T02:00:00.000Z', { ...loaded, destination: shop }, 100),
      // The watermark only moves on load: the nights after a failed load read from the same bound.
      loadFailed: await makeRun(stagingDir, '2026-01-02T02:00:00.000Z', { ...incremental, load: 'failed' }, 200),
      dryRun: await makeRun(stagingDir, '2026-01-03T02:00:00.000Z', { ...incremental, load: 'done', dryRun: true }, 300),
      loaded: await makeRun(stagingDir, '2026-01-04T02:00:00.000Z', { ...incremental, load: 'done' }, 400),
      // Newer than every loaded run: its changes are not in PostgreSQL.
      newerFailed: await makeRun(stagingDir, '2026-01-05T02:00:00.000Z', { ...incremental, from: '2026-01-04T01:00:00.000Z', load: 'failed' }, 500),
    };
    await setLatest(stagingDir, ids.newerFailed);
    const superseded = (id: string) => `not loaded (load ${id === ids.dryRun ? 'done, dry run' : 'failed'}), superseded by loaded run ${ids.loaded}, whose extract covered its changes`;

    const dry = etlSync(['clean', '--dry-run', '--staging', stagingDir], { cwd: root });
    assert.equal(dry.code, 0, dry.stderr);
    for (const id of [ids.loadFailed, ids.dryRun]) assert.match(dry.stdout, new RegExp(`would remove ${id} \\([^)]+\\): ${superseded(id).replace(/[()]/g, '\\$&')}\n`));
    assert.match(dry.stdout, /dry run: would remove 3 runs, would free .*; kept 2/);
    assert.equal((await listRunIds(stagingDir)).length, 5, '--dry-run removes nothing');

    const real = etlSync(['clean', '--staging', stagingDir, '--json'], { cwd: root });
    assert.equal(real.code, 0, real.stderr);
    const report = JSON.parse(real.stdout) as CleanReport;
    assert.deepEqual(report.removed.map((r) => [r.run_id, r.reason]).sort(), [
      [ids.firstLoaded, `loaded, superseded by loaded run ${ids.loaded}`],
      [ids.loadFailed, superseded(ids.loadFailed)],
      [ids.dryRun, superseded(ids.dryRun)],
    ]);
    assert.equal(reasonOf(report, ids.newerFailed), 'kept: `latest` points at it; not yet loaded (load failed)');
    assert.deepEqual([...(await listRunIds(stagingDir))].sort(), [ids.loaded, ids.newerFailed]);
  });

  test('kept: a failed load followed by a run loaded into another database, or a run whose load recorded no destination', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const ids = {
      otherDatabase: await makeRun(stagingDir, '2026-01-02T02:00:00.000Z', { ...incremental, destination: 'postgresql://etl@db.example:5432/staging_copy', load: 'failed' }, 10),
      // A load refused before it began (a lock held, a server down) records nothing: where it was going is not known.
      noDestination: await makeRun(stagingDir, '2026-01-02T03:00:00.000Z', { ...incremental, destination: undefined }, 10),
      sameDatabase: await makeRun(stagingDir, '2026-01-02T04:00:00.000Z', { ...incremental, load: 'failed' }, 10),
      loaded: await makeRun(stagingDir, '2026-01-04T02:00:00.000Z', { ...incremental, load: 'done' }, 10),
    };
    const r = await cleanRuns({ stagingDir });
    assert.deepEqual(removedIds(r), [ids.sameDatabase]);
    assert.equal(reasonOf(r, ids.otherDatabase), 'kept: not yet loaded (load failed)');
    assert.equal(reasonOf(r, ids.noDestination), 'kept: not yet loaded (load never ran)');
  });

  test('kept: a repair run, a --since run, a run of a collection or table the loaded run did not read or load, and a killed load', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const gone = { pid: spawnSync(process.execPath, ['-e', '']).pid!, host: os.hostname() };
    const ids = {
      // `etl repair`: documents chosen by _id, whatever their dates; only a full read covers them.
      repair: await makeRun(stagingDir, '2026-01-02T02:00:00.000Z', { ...incremental, repair: true, load: 'failed' }, 10),
      // --since a day before the watermark: it read documents the loaded run's bound left out.
      since: await makeRun(stagingDir, '2026-01-02T03:00:00.000Z', { ...incremental, from: '2025-12-31T00:00:00.000Z', load: 'failed' }, 10),
      otherCollection: await makeRun(stagingDir, '2026-01-02T04:00:00.000Z', { ...incremental, collections: ['users', 'events'], tables: ['users', 'events'], load: 'failed' }, 10),
      killedLoad: await makeRun(stagingDir, '2026-01-02T05:00:00.000Z', { ...incremental, load: 'running', writer: gone }, 10),
      // Read users, and events (by a --tables events run), loaded users only.
      loaded: await makeRun(stagingDir, '2026-01-04T02:00:00.000Z', { ...incremental, collections: ['users', 'events'], tables: ['users', 'events'], loadedTables: ['users'], load: 'done' }, 10),
    };
    const r = await cleanRuns({ stagingDir });
    assert.deepEqual(r.removed, []);
    for (const id of [ids.repair, ids.since, ids.otherCollection]) assert.equal(reasonOf(r, id), 'kept: not yet loaded (load failed)', id);
    assert.equal(reasonOf(r, ids.killedLoad), 'kept: not yet loaded (load killed)');

    // A full read covers the repair and the --since run, and loading events covers the other.
    const full = await makeRun(stagingDir, '2026-01-05T02:00:00.000Z', { ...loaded, from: null, collections: ['users', 'events'], tables: ['users', 'events'], destination: shop }, 10);
    const after = await cleanRuns({ stagingDir, dryRun: true });
    const covered = `superseded by loaded run ${full}, whose extract covered its changes`;
    for (const id of [ids.repair, ids.since, ids.otherCollection]) assert.equal(reasonOf(after, id), `not loaded (load failed), ${covered}`, id);
    assert.equal(reasonOf(after, ids.killedLoad), 'kept: not yet loaded (load killed)');
  });
});

describe('clean: a run that changes while clean runs', () => {
  // The listing is a moment's view: a stage may begin on a run clean found removable before clean
  // removes it. `latest` is a FIFO (test/harness/fifo-reads.ts): clean reads it once as it lists the
  // runs, and again just before it removes one, where it is held while the run changes.
  test('a run a stage began on after the listing is kept, not removed under it', async (t) => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const failed = await makeRun(stagingDir, '2026-01-02T10:00:00.000Z', { extract: 'done', transform: 'failed' }, 200);
    const newestLoaded = await makeRun(stagingDir, '2026-01-05T10:00:00.000Z', loaded, 300);
    const latest = path.join(stagingDir, 'latest');
    const pointer = Buffer.from(`${newestLoaded}\n`);
    // The transform a user starts again on the failed run: a live process of this host.
    const transform = spawn('sleep', ['600'], { stdio: 'ignore' });
    t.after(() => transform.kill('SIGKILL'));

    await mkfifoAt(latest);
    const cleaning = cleanRuns({ stagingDir });
    await answer(await nextRead(latest), pointer);
    const held = await nextRead(latest); // clean has decided: the failed run, older than the loaded one, goes
    await rm(latest);
    await writeFile(latest, pointer); // the others read a file again
    const paths = runPaths(stagingDir, failed);
    await updateManifest(paths, (m) => {
      m.stages.transform = { ...m.stages.transform!, status: 'running', ended_at: null, writer: { pid: transform.pid!, host: os.hostname() } };
    });
    await answer(held, pointer);
    const report = await cleaning;

    assert.deepEqual(report.removed.map((r) => r.run_id), [], 'nothing removed');
    assert.deepEqual(report.kept.find((k) => k.run_id === failed)?.reasons, [`its transform is at work in etl process ${transform.pid}`]);
    assert.deepEqual((await readdir(paths.dir)).sort(), ['extract', 'load', 'manifest.json', 'transform'], 'the run is whole');
  });
});

describe('clean: two at once', () => {
  test('a run another etl clean removed after this one listed it counts as removed, not kept', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const failed = await makeRun(stagingDir, '2026-01-02T10:00:00.000Z', { extract: 'done', transform: 'failed' }, 200);
    const newestLoaded = await makeRun(stagingDir, '2026-01-05T10:00:00.000Z', loaded, 300);
    await setLatest(stagingDir, newestLoaded);
    // The first clean is held as it reads the failed run's manifest (test/harness/fifo-reads.ts).
    const manifest = runPaths(stagingDir, failed).manifest;
    const bytes = await readFile(manifest);
    await mkfifoAt(manifest);
    const first = cleanRuns({ stagingDir });
    const held = await nextRead(manifest);
    await rm(manifest);
    await writeFile(manifest, bytes);
    const second = await cleanRuns({ stagingDir });
    assert.deepEqual(second.removed.map((r) => r.run_id), [failed]);
    await answer(held, bytes);
    const report = await first;
    assert.deepEqual(report.removed.map((r) => r.run_id), [failed], 'the run it found removable is gone');
    assert.match(report.removed[0]!.reason, /; another etl command removed it meanwhile \(nothing freed by this one\)$/);
    assert.equal(report.freed_bytes, 0);
    assert.deepEqual(report.kept.map((k) => k.run_id), [newestLoaded]);
    assert.deepEqual(await listRunIds(stagingDir), [newestLoaded]);
  });
});

describe('clean: unfinished archives', () => {
  test('a .partial an etl pack left (not written for a minute) goes, with --dry-run first; a fresh one stays', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const id = await makeRun(stagingDir, '2026-01-01T10:00:00.000Z', done, 10);
    const stale = path.join(stagingDir, `${id}.tar.gz.partial`);
    const fresh = path.join(stagingDir, 'other.tar.gz.partial');
    await writeFile(stale, Buffer.alloc(5000, 1));
    await writeFile(fresh, Buffer.alloc(10, 1));
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    await utimes(stale, twoMinutesAgo, twoMinutesAgo);
    const partials = async () => (await readdir(stagingDir)).filter((n) => n.endsWith('.partial')).sort();

    const dry = etlSync(['clean', '--dry-run', '--staging', stagingDir], { cwd: root });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`would remove ${stale.replace(/[.]/g, '\\.')} \\([^)]+\\): an unfinished file left by an etl command that did not end \\(last written 2 min ago\\)`));
    assert.match(dry.stdout, /dry run: would remove 0 runs and 1 unfinished \.partial file, would free/);
    assert.deepEqual(await partials(), [`${id}.tar.gz.partial`, 'other.tar.gz.partial']);

    const real = etlSync(['clean', '--staging', stagingDir, '--json'], { cwd: root });
    assert.equal(real.code, 0, real.stderr);
    const report = JSON.parse(real.stdout) as CleanReport;
    assert.deepEqual(report.removed_partials.map((p) => [p.file, p.bytes]), [[stale, 5000]]);
    assert.equal(report.freed_bytes, 5000);
    assert.deepEqual(await partials(), ['other.tar.gz.partial']);
    assert.deepEqual(await listRunIds(stagingDir), [id], 'the run stays');
  });
});

describe('runs', () => {
  let stagingDir: string;
  let ids: Awaited<ReturnType<typeof stagingWithHistory>>['ids'];
  beforeEach(async () => {
    ({ stagingDir, ids } = await stagingWithHistory());
  });

  test('lists runs newest first with stages, counts, loaded and size', async () => {
    const report: RunsReport = await listRuns({ stagingDir });
    assert.equal(report.latest, ids.latest);
    assert.deepEqual(report.runs.map((r) => r.run_id), Object.values(ids).reverse());
    const by = (id: string) => report.runs.find((r) => r.run_id === id)!;
    assert.deepEqual(by(ids.newestLoaded).stages_done, ['extract', 'transform', 'load']);
    assert.equal(by(ids.newestLoaded).loaded, true);
    assert.equal(by(ids.newestLoaded).documents, 10);
    assert.equal(by(ids.newestLoaded).rows, 8);
    assert.equal(by(ids.newestLoaded).rejects, 3); // 2 in transform + 1 in load
    assert.ok(by(ids.newestLoaded).bytes > 3000);
    assert.equal(by(ids.oldDryRun).loaded, false);
    assert.equal(by(ids.latest).latest, true);
    assert.equal(by(ids.latest).rejects, 2);
    assert.match(by(ids.oldBroken).problem!, /no manifest\.json/);
    assert.equal(by(ids.oldBroken).documents, null);
  });

  test('CLI table and --json', () => {
    const human = etlSync(['runs', '--staging', stagingDir, '--no-ledger'], { cwd: root });
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.split('\n');
    assert.match(lines[0]!, /^run\s+when \(UTC\)\s+source\s+extract\s+transform\s+load\s+documents\s+rows\s+rejects\s+pending\s+loaded$/);
    assert.match(lines[2]!, new RegExp(`^\\* ${ids.latest}\\s.*\\s10\\s+8\\s+2\\s+-\\s+no$`));
    assert.ok(lines.some((l) => l.includes(ids.newestLoaded) && /\s10\s+8\s+3\s+-\s+yes$/.test(l)));
    assert.ok(lines.some((l) => l.includes(ids.oldDryRun) && /dry run/.test(l)));
    const json = JSON.parse(etlSync(['runs', '--staging', stagingDir, '--json'], { cwd: root }).stdout) as RunsReport;
    assert.equal(json.runs.length, 10);
    assert.equal(json.runs[0]!.run_id, ids.latest);
  });
});
