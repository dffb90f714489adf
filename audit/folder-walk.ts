// Walks a run folder: the files it holds (for "extra file" checks and packing) and its size on disk.
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';

/** Every file under `dir`, relative, with forward slashes, sorted. Links are listed, not followed. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (sub: string): Promise<void> => {
    for (const entry of await readdir(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(rel);
      else out.push(rel);
    }
  };
  await walk('');
  return out.sort();
}

/** Sum of the sizes of the files under `dir` (what removing it frees, give or take block rounding). */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const rel of await filesUnder(dir)) {
    try {
      // lstat: a link inside the folder frees its own few bytes, not its target's.
      total += (await lstat(path.join(dir, rel))).size;
    } catch {
      // Removed meanwhile: it no longer takes space.
    }
  }
  return total;
}
