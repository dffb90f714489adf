// Staged runs go to ./.etl/runs by default (outside the source tree of a checkout, ignored by git);
// --staging / ETL_STAGING still choose; runs left in ./staging by earlier versions get a clear note.
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../harness/temp-dir.ts';
import { etl, REPO } from '../harness/cli.ts';

async function project(t: { after(fn: () => unknown): void }): Promise<{ cwd: string; dump: string }> {
  const cwd = await tempDir('etl-cli-staging-default-', t);
  await cp(path.join(REPO, 'pipeline.yaml'), path.join(cwd, 'pipeline.yaml'));
  const dump = path.join(cwd, 'dump');
  await mkdir(path.join(dump, 'wappizy'), { recursive: true });
  await writeFile(path.join(dump, 'wappizy', 'users.bson'), '');
  return { cwd, dump };
}

test('a run goes to ./.etl/runs by default; --staging and ETL_STAGING still choose', async (t) => {
  const { cwd, dump } = await project(t);
  const r = await etl(['extract', '--source', dump, '--full', '--json'], { cwd });
  assert.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout) as { runDir: string; runId: string; run_id: string; run_dir: string; started_at: string; startedAt: string };
  const runDir = body.runDir;
  // Scripts written against the first releases read the snake_case names: they stay.
  assert.equal(body.run_dir, runDir);
  assert.equal(body.run_id, body.runId);
  assert.equal(body.started_at, body.startedAt);
  assert.equal(path.dirname(runDir), path.join(cwd, '.etl', 'runs'));
  assert.equal((await readFile(path.join(cwd, '.etl', 'runs', 'latest'), 'utf8')).trim(), path.basename(runDir));
  assert.deepEqual((await readdir(cwd)).sort(), ['.etl', 'dump', 'pipeline.yaml']);

  const flag = await etl(['extract', '--source', dump, '--full', '--json', '--staging', 'elsewhere'], { cwd });
  assert.equal(path.dirname((JSON.parse(flag.stdout) as { runDir: string }).runDir), path.join(cwd, 'elsewhere'));
  const env = await etl(['extract', '--source', dump, '--full', '--json'], { cwd, env: { ETL_STAGING: 'from-env' } });
  assert.equal(path.dirname((JSON.parse(env.stdout) as { runDir: string }).runDir), path.join(cwd, 'from-env'));
});

test('runs left in ./staging by an earlier version: a note says how to use or move them; --staging staging uses them', async (t) => {
  const { cwd, dump } = await project(t);
  const old = await etl(['extract', '--source', dump, '--full', '--json', '--staging', 'staging'], { cwd });
  assert.equal(old.code, 0, old.stderr);
  const runId = (JSON.parse(old.stdout) as { runId: string }).runId;

  const listed = await etl(['runs', '--no-ledger'], { cwd });
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stderr, /^note: staged runs found in .*\/staging \(the default folder of earlier versions\); this etl uses .*\/\.etl\/runs\./m);
  assert.match(listed.stderr, /--staging staging/);
  assert.match(listed.stderr, /mv staging\/2\* staging\/latest \.etl\/runs\//);

  const transformed = await etl(['transform', '--staging', 'staging', '--pipeline', 'pipeline.yaml'], { cwd });
  assert.equal(transformed.code, 0, transformed.stderr);
  assert.equal(transformed.stderr, '', 'no note when the folder is chosen');
  assert.match(transformed.stdout, new RegExp(`run in ${cwd.replace(/[/.]/g, '\\$&')}/staging/${runId}`));
  // ETL_STAGING chooses the folder as --staging does: no note either.
  const fromEnv = await etl(['runs', '--no-ledger'], { cwd, env: { ETL_STAGING: 'chosen' } });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.equal(fromEnv.stderr, '', 'no note when ETL_STAGING chooses the folder');
  await writeFile(path.join(cwd, '.env'), 'ETL_STAGING=chosen-in-dotenv\n');
  const fromDotenv = await etl(['runs', '--no-ledger'], { cwd });
  assert.equal(fromDotenv.stderr, '', 'no note when .env chooses the folder');
  await rm(path.join(cwd, '.env'));
  // Under --json the note never reaches stdout (or stderr: scripts read them).
  const json = await etl(['runs', '--no-ledger', '--json'], { cwd });
  assert.equal(json.stderr, '');
  assert.doesNotThrow(() => JSON.parse(json.stdout));
});

test('a staging folder that is a file is named as such by etl runs and clean, not reported as holding no runs', async (t) => {
  const { cwd } = await project(t);
  const file = path.join(cwd, 'not-a-folder');
  await writeFile(file, 'x');
  for (const args of [['runs', '--no-ledger'], ['clean', '--dry-run']]) {
    const r = await etl([...args, '--staging', file], { cwd });
    assert.equal(r.code, 1, `${args[0]}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^error: cannot read the staging folder ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: a part of the path is a file`, 'm'), args[0]);
    assert.match(r.stderr, /^hint: .*--staging/m, args[0]);
    assert.doesNotMatch(r.stdout, /no runs/, args[0]);
  }
  // A staging folder not made yet holds no runs: said as before.
  const none = await etl(['runs', '--no-ledger', '--staging', path.join(cwd, 'not-yet')], { cwd });
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /^no runs in /);
});
