// A run folder whose manifest.json was edited by hand or damaged (JSON or not): every command
// that reads it names the manifest and what is wrong with it (bad_manifest), never an internal error
// of etl; `etl runs` lists it as damaged, saying why, and `etl clean` goes on.
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { etl } from '../harness/cli.ts';
import { realRun, type RealRun } from '../audit/staged-run.ts';

let run: RealRun;
let manifest = '';
before(async () => {
  run = await realRun();
  manifest = await readFile(run.paths.manifest, 'utf8');
});
after(() => (run ? rm(run.cwd, { recursive: true, force: true }) : undefined));

/** The manifest etl wrote, changed by `edit`. */
function edited(edit: (m: Record<string, any>) => void): string {
  const m = JSON.parse(manifest) as Record<string, any>;
  edit(m);
  return JSON.stringify(m);
}

const DAMAGES: readonly (readonly [string, () => string, RegExp])[] = [
  ['null', () => 'null', /it holds null, not an object/],
  ['an array', () => '[]', /it holds an array, not an object/],
  ['no tool_version', () => edited((m) => delete m.tool_version), /tool_version is not a string/],
  ['no pipeline_sha256', () => edited((m) => delete m.pipeline_sha256), /pipeline_sha256 is not a string/],
  ['stages a number', () => edited((m) => (m.stages = 5)), /stages is not an object/],
  ['an unknown status', () => edited((m) => (m.stages.transform.status = 'finished')), /stages\.transform\.status is "finished"/],
  ['a collection record a number', () => edited((m) => (m.stages.extract.collections.users = 5)), /stages\.extract\.collections\.users is not an object/],
  ['tables an array', () => edited((m) => (m.stages.transform.tables = [])), /stages\.transform\.tables is not an object/],
  ['its end cut off', () => manifest.slice(0, 40), /is not valid JSON/],
  ['another format', () => edited((m) => (m.format = 99)), /has format 99; this etl reads format 1/],
];

for (const [name, body, problem] of DAMAGES) {
  test(`a manifest with ${name}: every command says bad_manifest and what is wrong, none an internal error`, async () => {
    await writeFile(run.paths.manifest, body());
    const opts = { cwd: run.cwd };
    const runFlags = ['--run', run.runId, '--pipeline', run.pipelineFile];
    for (const args of [
      ['transform', ...runFlags],
      ['report', '--run', run.runId, '--no-ledger'],
      ['pack', '--run', run.runId],
      ['verify', run.paths.dir],
    ]) {
      const r = await etl(args, opts);
      assert.notEqual(r.code, 0, `${args[0]}: ${r.output}`);
      assert.match(r.stderr, /\[bad_manifest\]/, `${args[0]}: ${r.output}`);
      assert.match(r.stderr, problem, `${args[0]}: ${r.output}`);
      assert.match(r.stderr, /^hint: /m, `${args[0]}: what to do is said: ${r.output}`);
      assert.doesNotMatch(r.output, /internal error|bug in etl/, args[0]);
    }
    const runs = await etl(['runs', '--no-ledger'], opts);
    assert.equal(runs.code, 0, runs.output);
    assert.match(runs.output, new RegExp(`${run.runId} .* damaged`), runs.output);
    assert.match(runs.output, problem, runs.output);
    // Kept: it is the run `latest` names.
    const clean = await etl(['clean', '--dry-run'], opts);
    assert.equal(clean.code, 0, clean.output);
    assert.doesNotMatch(clean.output, /internal error|bug in etl/);
  });
}
