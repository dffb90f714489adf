// Lets another user (sshd's test user, `nobody`) reach files of this checkout when it lives under a
// folder they cannot traverse (a `mktemp -d` clone, /root): traverse-only permission (o+x, no listing)
// on the ancestors that lack it, until the returned function puts their modes back.
import { chmod, stat } from 'node:fs/promises';
import path from 'node:path';

export async function grantTraverse(dir: string): Promise<() => Promise<void>> {
  const changed: { dir: string; mode: number }[] = [];
  for (let d = dir; ; d = path.dirname(d)) {
    const mode = (await stat(d)).mode & 0o7777;
    if ((mode & 0o001) === 0) {
      await chmod(d, mode | 0o001);
      changed.push({ dir: d, mode });
    }
    if (path.dirname(d) === d) break;
  }
  return async () => {
    for (const c of changed) await chmod(c.dir, c.mode).catch(() => undefined);
  };
}
