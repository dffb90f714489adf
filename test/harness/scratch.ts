// Scratch folders as a killed etl command leaves them (staging/scratch-dir.ts), for the tests that
// check the next command removes them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** The pid of a process that has exited. */
export function deadPid(): number {
  const child = spawnSync('true');
  assert.equal(child.status, 0);
  return child.pid!;
}

/** A folder `<tmp>/<name>` naming `owner` (no owner file when null). */
export async function plantScratch(name: string, owner: { pid: number; host: string } | null): Promise<string> {
  const dir = path.join(os.tmpdir(), name);
  await mkdir(path.join(dir, 'archive'), { recursive: true });
  await writeFile(path.join(dir, 'archive', 'users.csv'), 'id\n1\n');
  if (owner) await writeFile(path.join(dir, '.etl-owner.json'), JSON.stringify(owner));
  return dir;
}
