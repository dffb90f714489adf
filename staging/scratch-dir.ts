// Scratch folders in the system's temporary folder (`etl verify`'s unpacked archive, `etl diff`'s
// expected rows of a collection's other tables): removed by their command when it ends, failed or
// interrupted. A command killed outright (SIGKILL, the OOM killer, a power cut) cannot, and an
// unpacked archive may weigh gigabytes: so each folder names its owner (a file inside: pid and
// host, as a running stage does, staging/stage-writer.ts), and the next command making a folder of
// the same kind removes those whose owner is certainly gone. A folder that names no owner (another
// program's, or a test's of a similar name) or one whose owner may be alive is never touched.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { currentWriter, writerGone, type StageWriter } from './stage-writer.ts';

const OWNER_FILE = '.etl-owner.json';

/** A new folder `<tmp>/<prefix>XXXXXX` owned by this process, after removing the abandoned ones of the same prefix. */
export async function makeScratchDir(prefix: string): Promise<string> {
  await removeAbandoned(prefix);
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  await writeFile(path.join(dir, OWNER_FILE), `${JSON.stringify(currentWriter())}\n`);
  return dir;
}

/** Removes `<tmp>/<prefix>*` folders whose owner ran on this host and is gone; returns their names. */
export async function removeAbandoned(prefix: string): Promise<string[]> {
  const tmp = os.tmpdir();
  const names = await readdir(tmp).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^[A-Za-z0-9]{6}$/.test(name.slice(prefix.length))) continue;
    const dir = path.join(tmp, name);
    if (!writerGone(await ownerOf(dir))) continue;
    // Another user's folder, or one its owner's successor is removing: not this command's business.
    await rm(dir, { recursive: true, force: true }).then(
      () => removed.push(name),
      () => undefined,
    );
  }
  return removed;
}

async function ownerOf(dir: string): Promise<StageWriter | undefined> {
  try {
    const owner = JSON.parse(await readFile(path.join(dir, OWNER_FILE), 'utf8')) as Partial<StageWriter>;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? { pid: owner.pid, host: owner.host } : undefined;
  } catch {
    return undefined;
  }
}
