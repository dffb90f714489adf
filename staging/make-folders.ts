// Every folder etl makes (staging, run folders, --out's folders, sample dumps) is made here. Node's
// mkdir({ recursive: true }) never returns where the file system refuses a new entry with ENOENT
// although the parent exists (/proc): it makes the parent, finds it there, retries the child, and
// so on for ever, deaf to SIGTERM (the call runs on the thread pool). Here each missing folder is
// made once, from the nearest existing one down, so such a place fails at once, naming the folder.
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { StagingError } from '../errors/etl-error.ts';

/**
 * `dir` and its missing parents, as mkdir -p does. A system error (EACCES, ENOTDIR, ENOSPC…) is
 * thrown as the system gave it, its `path` the folder it was about, for the caller to say in words;
 * a folder the file system will not hold is a StagingError (write_failed) naming it.
 */
export async function makeFolders(dir: string): Promise<void> {
  const folder = path.resolve(dir);
  if (await madeOrThere(folder)) return;
  const parent = path.dirname(folder);
  if (parent === folder) return; // the root: always there
  await makeFolders(parent);
  // The parent is there now: a second ENOENT is the file system's refusal, not a missing parent.
  if (!(await madeOrThere(folder))) throw cannotHold(folder, parent);
}

/** True when `folder` was made or is a folder already; false when its parent is missing (ENOENT). */
async function madeOrThere(folder: string): Promise<boolean> {
  try {
    await mkdir(folder);
    return true;
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    // Made meanwhile by another process, or there already: fine when it is a folder.
    if (code === 'EEXIST' && (await stat(folder).then((s) => s.isDirectory(), () => false))) return true;
    throw cause;
  }
}

function cannotHold(folder: string, parent: string): StagingError {
  return new StagingError('write_failed', `cannot create the folder ${folder}: ${parent} exists but takes no new folders (a kernel file system, such as /proc)`, {
    context: { path: folder },
    hint: 'give a folder on a disk, e.g. under your home or the project folder',
  });
}
