// Where a refresh keeps what it downloaded, and how it quotes a tool's output in a message.
import path from 'node:path';
import type { EtlConfig } from '../connect/config.ts';
import { newRunId } from '../staging/run-folder.ts';
import { makeFolders } from '../staging/make-folders.ts';

/** `<out>/<timestamp>-<database><extension>`, the folder created (default out: <staging>/dumps). */
export async function dumpFilePath(config: EtlConfig, outDir: string | undefined, now: Date | undefined, database: string, extension: string): Promise<string> {
  const dir = path.resolve(config.cwd, outDir ?? path.join(config.stagingDir, 'dumps'));
  await makeFolders(dir);
  return path.join(dir, `${newRunId(now ?? new Date())}-${database.replace(/[^A-Za-z0-9_.-]/g, '_')}${extension}`);
}

/** The last `n` lines of a tool's output, indented, for an error message. */
export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .slice(-n)
    .map((l) => `  ${l}`)
    .join('\n');
}
