import type { ChildProcess } from 'node:child_process';
import { isRunning } from './children.ts';

/**
 * Sends `signal`, waits up to `graceMs` for the process to exit, then SIGKILLs it. Resolves once it
 * has exited, never hangs on a process that already died.
 */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (!isRunning(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut && isRunning(child)) {
    child.kill('SIGKILL');
    await exited;
  }
}
